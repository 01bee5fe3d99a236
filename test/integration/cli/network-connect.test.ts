// `podnet network connect|disconnect|reload` and `up --write-etc`, each
// case in a throwaway host (reload's case flushes the firewall: only the
// host's own rules, never the machine's). Reload after the flush: the
// published port answers again, with the same address and MAC inside.
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../../helpers/fixtures.js';
import { PLUGIN_DIR, uniq } from '../../helpers/host.js';
import { CONF_FLAGS, ok, skipReason, stateOf, warmHost } from '../../helpers/lifecycle-env.js';
import { probeHere, serve, stop } from '../../helpers/probe.js';
import { reportSkip } from '../../helpers/skip.js';
import type { ThrowawayHost } from '../../helpers/throwaway-host.js';

const DNS_PROBE = fixture('networks/probe.mjs');
const dnsMissing = [join(PLUGIN_DIR, 'dnsname'), '/usr/sbin/dnsmasq'].find((t) => !existsSync(t));
const dnsSkip = reportSkip(
  'the connect DNS case',
  dnsMissing === undefined
    ? undefined
    : `${dnsMissing} is missing (scripts/install-debian-deps.sh)`,
);

/** eth0's addresses and MAC inside NETNS, as iproute2 sees them. */
async function eth0(host: ThrowawayHost, netns: string): Promise<string> {
  const r = await host.run([
    'ip',
    '-n',
    netns.replace('/run/netns/', ''),
    '-j',
    'addr',
    'show',
    'eth0',
  ]);
  const [link] = JSON.parse(r.stdout) as {
    address: string;
    addr_info: { local: string; scope: string }[];
  }[];
  const addrs = link!.addr_info.filter((a) => a.scope !== 'link').map((a) => a.local);
  return `${link!.address} ${addrs.join(',')}`;
}

describe.skipIf(skipReason !== undefined)('podnet network connect, disconnect, reload', () => {
  let host: ThrowawayHost;

  beforeAll(async () => {
    ({ host } = await warmHost());
  }, 60_000);

  afterAll(async () => {
    await host?.close();
  });

  for (const driver of ['cni', 'native'] as const) {
    it(`reload after a firewall flush (${driver}): the published port works again, same IP and MAC`, async () => {
      const id = `reload-${driver}-${uniq()}`;
      await ok(host, ['up', id, '--driver', driver, '-p', '127.0.0.1:8090:80']);
      const netns = (await stateOf(host, id))!.netnsPath!;
      const before = await eth0(host, netns);
      const server = await serve(host, netns, ['80']);
      const reach = () => probeHere(host, ['tcp', '127.0.0.1', '8090']);
      try {
        expect((await reach()).stdout.trim()).toMatch(/^tcp:80:/);
        // What a firewall reload does to rules it did not write.
        const flush =
          driver === 'cni'
            ? [
                ['iptables', '-t', 'nat', '-F'],
                ['iptables', '-t', 'filter', '-F'],
              ]
            : [['nft', 'delete', 'table', 'inet', 'podnet']];
        for (const argv of flush) expect((await host.run(argv)).code).toBe(0);
        expect((await reach()).code).not.toBe(0);

        // --all: every ready container of the host (this one alone here).
        const which = driver === 'cni' ? [id] : ['--all'];
        const out = JSON.parse(await ok(host, ['network', 'reload', ...which, '--json']));
        expect(out).toEqual([{ id, networks: ['podman'] }]);
        expect((await reach()).stdout.trim()).toMatch(/^tcp:80:/);
        expect(await eth0(host, netns)).toBe(before);
      } finally {
        await stop(server);
      }
      await ok(host, ['down', id]);
    });
  }

  it('connect and disconnect by the CLI; bad input is one line, exit 1, nothing changed', async () => {
    const id = `conn-${uniq()}`;
    const net = `cn${uniq()}`;
    await ok(host, ['network', 'create', net, '--subnet', '10.77.3.0/24', '--disable-dns']);
    await ok(host, ['up', id]);
    const netns = (await stateOf(host, id))!.netnsPath!;
    const got = JSON.parse(
      await ok(host, ['network', 'connect', net, id, '--ip', '10.77.3.9', '--json']),
    );
    expect(got).toEqual({ id, network: net, ifName: 'eth1', addresses: ['10.77.3.9/24'] });
    const inside = await host.run(['ip', '-n', netns.replace('/run/netns/', ''), '-br', 'addr']);
    expect(inside.stdout).toMatch(/^eth1@\S+\s+UP\s+10\.77\.3\.9\/24/m);
    // network inspect lists the container on eth1.
    const [info] = JSON.parse(await ok(host, ['network', 'inspect', net]));
    expect(Object.keys(info.containers[id].interfaces)).toEqual(['eth1']);

    const state = readFileSync(host.path(`/run/podnet/${id}.json`), 'utf8');
    for (const [args, code] of [
      [['network', 'connect', net, id], 'ERR_PODNET_ALREADY_CONNECTED'],
      [['network', 'connect', 'nosuch', id], 'ERR_PODNET_CNI_NETWORK_NOT_FOUND'],
      [['network', 'disconnect', 'podman-nosuch', id], 'ERR_PODNET_NOT_CONNECTED'],
    ] as const) {
      const r = await host.podnet([...args, ...CONF_FLAGS]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^podnet: [^\\n]*\\[${code}\\]\\n$`));
    }
    expect(readFileSync(host.path(`/run/podnet/${id}.json`), 'utf8')).toBe(state);

    await ok(host, ['network', 'disconnect', net, id]);
    expect(JSON.parse(await ok(host, ['network', 'inspect', net]))[0].containers).toEqual({});
    const after = await host.run(['ip', '-n', netns.replace('/run/netns/', ''), '-br', 'addr']);
    expect(after.stdout).not.toMatch(/^eth1/m);
    await ok(host, ['down', id]);
    await ok(host, ['network', 'rm', net]);
  });

  it('up --write-etc writes resolv.conf and hosts; a symlinked dir is refused before the setup', async () => {
    const id = `etc-${uniq()}`;
    const dir = host.path(`/run/etc-${id}`);
    mkdirSync(dir);
    await ok(host, ['up', id, '--name', 'web1', '--write-etc', `/run/etc-${id}`]);
    const settings = JSON.parse(await ok(host, ['inspect', id]));
    expect(readFileSync(`${dir}/hosts`, 'utf8')).toBe(
      [
        '127.0.0.1\tlocalhost',
        '::1\tlocalhost',
        `${settings.Gateway}\thost.containers.internal host.docker.internal`,
        `${settings.IPAddress}\tweb1`,
        '',
      ].join('\n'),
    );
    expect(readFileSync(`${dir}/resolv.conf`, 'utf8')).toMatch(/^nameserver /m);
    await ok(host, ['down', id]);

    symlinkSync(`/run/etc-${id}`, host.path(`/run/link-${id}`));
    const r = await host.podnet(['up', id, '--write-etc', `/run/link-${id}`, ...CONF_FLAGS]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[ERR_PODNET_UNSAFE_PATH\]\n$/);
    expect(await stateOf(host, id)).toBeUndefined();
  });

  it.skipIf(dnsSkip !== undefined)(
    'a connected container is resolved by name and alias on the new network, until it disconnects; resolv.conf names the gateway',
    async () => {
      const net = `dn${uniq()}`;
      const [a, b] = [`dnsa-${uniq()}`, `dnsb-${uniq()}`];
      await ok(host, ['network', 'create', net, '--subnet', '10.77.4.0/24']);
      const etc = `/run/etc-${a}`;
      mkdirSync(host.path(etc));
      await ok(host, ['up', a, '--network', net, '--write-etc', etc]);
      await ok(host, ['up', b]);
      const resolv = readFileSync(host.path(`${etc}/resolv.conf`), 'utf8');
      expect(resolv).toMatch(/^search dns\.podman( |$)/m);
      expect(resolv.match(/^nameserver .*$/gm)).toEqual(['nameserver 10.77.4.1']);
      const ip = JSON.parse(
        await ok(host, ['network', 'connect', net, b, '--alias', 'bee', '--json']),
      ).addresses[0].split('/')[0];
      const netnsA = (await stateOf(host, a))!.netnsPath!;
      const resolve = async (name: string) => {
        const r = await host.run([
          'nsenter',
          `--net=${netnsA}`,
          '--',
          process.execPath,
          DNS_PROBE,
          'resolve',
          '10.77.4.1',
          name,
        ]);
        return JSON.parse(r.stdout);
      };
      expect(await resolve(b)).toEqual({ addresses: [ip] });
      expect(await resolve('bee.dns.podman')).toEqual({ addresses: [ip] });
      await ok(host, ['network', 'disconnect', net, b]);
      expect(await resolve(`${b}.dns.podman`)).toEqual({ error: 'ENOTFOUND' });
      expect(await resolve('bee.dns.podman')).toEqual({ error: 'ENOTFOUND' });
      await ok(host, ['down', a]);
      await ok(host, ['down', b]);
      await ok(host, ['network', 'rm', net]);
    },
  );
});
