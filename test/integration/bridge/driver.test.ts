// The native bridge driver end to end, each case in a throwaway host (it
// writes podnet's nftables table, sysctls and the host's routes): real
// traffic through published ports (TCP, UDP, a range, 127.0.0.1) from an
// "outside" namespace the test made and from the host itself, containers
// on one bridge reaching each other and themselves (hairpin), outbound
// masquerade, inspect equal to the CNI path's, leases shared with the
// plugins, gc after a reboot, and bad input refused with nothing changed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uniq } from '../../helpers/host.js';
import { CONF_FLAGS, ok, skipReason, stateOf, warmHost } from '../../helpers/lifecycle-env.js';
import { probe, probeHere, serve, stop } from '../../helpers/probe.js';
import {
  type HostSnapshot,
  settledDiff,
  type ThrowawayHost,
} from '../../helpers/throwaway-host.js';

const OUTSIDE = '/run/netns/podnet-test-outside';
/** The outside namespace's address, and the host's on the link to it. */
const OUTSIDE_IP = '198.51.100.2';
const HOST_IP = '198.51.100.1';

/** `podnet up` with the native driver; the container's state. */
async function up(host: ThrowawayHost, id: string, flags: string[] = []) {
  await ok(host, ['up', id, '--driver', 'native', ...flags]);
  const state = await stateOf(host, id);
  if (!state?.netnsPath) throw new Error(`no namespace in the state of ${id}`);
  return { netnsPath: state.netnsPath };
}

async function inspect(host: ThrowawayHost, id: string): Promise<Record<string, unknown>> {
  return JSON.parse(await ok(host, ['inspect', id])) as Record<string, unknown>;
}

describe.skipIf(skipReason !== undefined)('the native bridge driver', () => {
  let host: ThrowawayHost;
  let baseline: HostSnapshot;

  beforeAll(async () => {
    ({ host, baseline } = await warmHost());
    // The outside world: a namespace on a veth of its own, with no route
    // to the containers' subnet (so only masquerade lets them answer).
    for (const argv of [
      ['ip', 'netns', 'add', 'podnet-test-outside'],
      [
        'ip',
        'link',
        'add',
        'pnout0',
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        'podnet-test-outside',
      ],
      ['ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', 'pnout0'],
      ['ip', 'link', 'set', 'pnout0', 'up'],
      ['ip', '-n', 'podnet-test-outside', 'addr', 'add', `${OUTSIDE_IP}/24`, 'dev', 'eth0'],
      ['ip', '-n', 'podnet-test-outside', 'link', 'set', 'eth0', 'up'],
      ['ip', '-n', 'podnet-test-outside', 'link', 'set', 'lo', 'up'],
    ]) {
      const r = await host.run(argv);
      if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    }
    baseline = await host.snapshot();
  }, 60_000);

  afterAll(async () => {
    await host?.close();
  });

  it('published TCP, UDP, a range and 127.0.0.1 reach the container from outside and from the host', async () => {
    const id = `ports-${uniq()}`;
    const s = await up(host, id, [
      '-p',
      '8080:80',
      '-p',
      '127.0.0.1:8081:81',
      '-p',
      '8082-8083:82-83',
      '-p',
      '9090:90/udp',
    ]);
    const ip = String((await inspect(host, id))['IPAddress']);
    const server = await serve(host, s.netnsPath, ['80', '81', '82', '83', 'u90']);
    try {
      // From outside, through the host's address: the client's own address arrives.
      expect((await probe(host, OUTSIDE, ['tcp', HOST_IP, '8080'])).stdout.trim()).toBe(
        `tcp:80:${OUTSIDE_IP}`,
      );
      expect((await probe(host, OUTSIDE, ['tcp', HOST_IP, '8083'])).stdout.trim()).toBe(
        `tcp:83:${OUTSIDE_IP}`,
      );
      expect((await probe(host, OUTSIDE, ['udp', HOST_IP, '9090'])).stdout.trim()).toBe(
        `udp:90:${OUTSIDE_IP}`,
      );
      // 127.0.0.1 only from the host itself; not from outside.
      const local = await probeHere(host, ['tcp', '127.0.0.1', '8081']);
      expect(local.stdout.trim()).toMatch(/^tcp:81:/);
      expect((await probe(host, OUTSIDE, ['tcp', HOST_IP, '8081'])).code).not.toBe(0);
      // From the host to its own address, and hairpin: the container to its own published port.
      expect((await probeHere(host, ['tcp', HOST_IP, '8082'])).stdout).toMatch(/^tcp:82:/);
      const hairpin = await probe(host, s.netnsPath, ['tcp', HOST_IP, '8080']);
      expect(hairpin.stdout.trim()).toMatch(/^tcp:80:/);
      expect(ip).toMatch(/^10\.88\./);
    } finally {
      await stop(server);
    }
    await ok(host, ['down', id]);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('containers on one bridge reach each other; outbound traffic is masqueraded', async () => {
    const a = `peer-a-${uniq()}`;
    const b = `peer-b-${uniq()}`;
    const sa = await up(host, a);
    const sb = await up(host, b);
    const ipA = String((await inspect(host, a))['IPAddress']);
    const ipB = String((await inspect(host, b))['IPAddress']);
    expect(ipA).not.toBe(ipB);
    const server = await serve(host, sa.netnsPath, ['80']);
    const outside = await serve(host, OUTSIDE, ['7000']);
    try {
      expect((await probe(host, sb.netnsPath, ['tcp', ipA, '80'])).stdout.trim()).toBe(
        `tcp:80:${ipB}`,
      );
      // The outside has no route back to 10.88/16: it answers the host's address.
      expect((await probe(host, sb.netnsPath, ['tcp', OUTSIDE_IP, '7000'])).stdout.trim()).toBe(
        `tcp:7000:${HOST_IP}`,
      );
      // lo is up inside.
      const lo = await host.run([
        'ip',
        '-n',
        sa.netnsPath.split('/').pop()!,
        '-j',
        'link',
        'show',
        'lo',
      ]);
      expect(lo.stdout).toContain('"UP"');
    } finally {
      await stop(server);
      await stop(outside);
    }
    await ok(host, ['down', a]);
    await ok(host, ['down', b]);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('inspect is the same as the CNI path for the same inputs', async () => {
    const flags = [
      '--ip',
      '10.88.0.50',
      '--mac',
      '02:42:0a:58:00:32',
      '-p',
      '8080:80',
      '-p',
      '9090:90/udp',
    ];
    const shown: Record<string, unknown>[] = [];
    const id = `same-${uniq()}`;
    for (const driver of ['cni', 'native']) {
      await ok(host, ['up', id, '--driver', driver, ...flags]);
      const { SandboxKey, ...rest } = await inspect(host, id);
      expect(SandboxKey).toMatch(/^\/run\/netns\/cni-/);
      shown.push(rest);
      await ok(host, ['down', id]);
    }
    expect(shown[1]).toEqual(shown[0]);
    expect(shown[0]).toMatchObject({ IPAddress: '10.88.0.50', MacAddress: '02:42:0a:58:00:32' });
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('leases are shared with host-local: a native and a CNI container get different addresses', async () => {
    const ids = [`mix-n-${uniq()}`, `mix-c-${uniq()}`, `mix-n2-${uniq()}`];
    const drivers = ['native', 'cni', 'native'];
    const ips: string[] = [];
    for (const [i, id] of ids.entries()) {
      await ok(host, ['up', id, '--driver', drivers[i]!]);
      ips.push(String((await inspect(host, id))['IPAddress']));
    }
    expect(new Set(ips).size).toBe(3);
    // Both kinds of lease are host-local's files: ID, then the interface.
    const lease = await host.run(['cat', `/var/lib/cni/networks/podman/${ips[0]}`]);
    expect(lease.stdout).toBe(`${ids[0]}\r\neth0`);
    for (const id of ids) await ok(host, ['down', id]);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('after a reboot (state, namespaces and the table gone), gc frees the leases', async () => {
    const id = `reboot-${uniq()}`;
    const s = await up(host, id, ['--ip', '10.88.0.60', '-p', '8080:80']);
    // What a reboot takes: tmpfs /run (the state, the namespace), the nftables ruleset.
    for (const argv of [
      ['umount', s.netnsPath],
      ['rm', '-f', s.netnsPath, `/run/podnet/${id}.json`],
      ['nft', 'delete', 'table', 'inet', 'podnet'],
    ]) {
      const r = await host.run(argv);
      expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    }
    const gc = JSON.parse(await ok(host, ['gc', '--json'])) as {
      releasedAttachments: { containerId: string }[];
    };
    expect(gc.releasedAttachments.map((a) => a.containerId)).toEqual([id]);
    // The same static address can be taken again.
    const again = `reboot2-${uniq()}`;
    await up(host, again, ['--ip', '10.88.0.60']);
    await ok(host, ['down', again]);
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  it('serves a network made by `network create` (DNS off): its subnet, its bridge, its ports', async () => {
    const dir = '/run/podnet-test-made.d';
    mkdirSync(host.path(dir), { recursive: true, mode: 0o755 });
    const conf = ['--cni-config-dir', dir];
    await ok(host, [
      'network',
      'create',
      'made',
      '--disable-dns',
      '--subnet',
      '10.77.0.0/24',
      ...conf,
    ]);
    const id = `made-${uniq()}`;
    await ok(host, ['up', id, '--driver', 'native', '--network', 'made', '-p', '8090:80', ...conf]);
    const shown = await inspect(host, id);
    expect(String(shown['IPAddress'])).toMatch(/^10\.77\.0\.\d+$/);
    const s = await stateOf(host, id);
    expect(s).toMatchObject({ networks: [{ driver: 'native' }] });
    const server = await serve(host, s!.netnsPath!, ['80']);
    try {
      expect((await probe(host, OUTSIDE, ['tcp', HOST_IP, '8090'])).stdout.trim()).toBe(
        `tcp:80:${OUTSIDE_IP}`,
      );
    } finally {
      await stop(server);
    }
    await ok(host, ['down', id, ...conf]);
    await ok(host, ['network', 'rm', 'made', ...conf]);
    await host.run(['rm', '-rf', dir]);
    // network rm took the bridge and the network's elements of the table too.
    expect(await settledDiff(host, baseline)).toEqual([]);
  });

  describe('bad input: a typed error, nothing changed', () => {
    const refused = async (args: string[], code: string, prepare?: string[][]): Promise<void> => {
      for (const argv of prepare ?? []) {
        const r = await host.run(argv);
        expect(r.code, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
      }
      const before = await host.snapshot();
      const r = await host.podnet(
        args.includes('--cni-config-dir') ? args : [...args, ...CONF_FLAGS],
      );
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`[${code}]`);
      expect(await settledDiff(host, before)).toEqual([]);
    };

    it('a taken static IP', async () => {
      const id = `taken-${uniq()}`;
      await up(host, id, ['--ip', '10.88.0.70']);
      await refused(
        ['up', `t2-${uniq()}`, '--driver', 'native', '--ip', '10.88.0.70'],
        'ERR_PODNET_ADDRESS_TAKEN',
      );
      await ok(host, ['down', id]);
    });

    it('a host port another container publishes', async () => {
      const id = `port-${uniq()}`;
      await up(host, id, ['-p', '8085:80']);
      await refused(
        ['up', `p2-${uniq()}`, '--driver', 'native', '-p', '8085:81'],
        'ERR_PODNET_PORT_IN_USE',
      );
      await ok(host, ['down', id]);
    });

    it('a subnet that overlaps a host route, a bridge name held by another kind of link', async () => {
      const dir = '/run/podnet-test-bad.d';
      const list = (name: string, bridge: string, subnet: string) =>
        JSON.stringify({
          cniVersion: '1.0.0',
          name,
          plugins: [
            {
              type: 'bridge',
              bridge,
              isGateway: true,
              ipMasq: true,
              ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }] },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
          ],
        });
      mkdirSync(host.path(dir), { recursive: true });
      writeFileSync(
        host.path(`${dir}/overlap.conflist`),
        list('overlap', 'pnover0', '198.51.100.0/25'),
      );
      writeFileSync(host.path(`${dir}/kind.conflist`), list('kind', 'pndummy0', '10.123.0.0/24'));
      await refused(
        [
          'up',
          `o-${uniq()}`,
          '--driver',
          'native',
          '--network',
          'overlap',
          '--cni-config-dir',
          dir,
        ],
        'ERR_PODNET_SUBNET_OVERLAP',
      );
      await refused(
        ['up', `k-${uniq()}`, '--driver', 'native', '--network', 'kind', '--cni-config-dir', dir],
        'ERR_PODNET_BRIDGE_CONFLICT',
        [['ip', 'link', 'add', 'pndummy0', 'type', 'veth', 'peer', 'name', 'pndummy1']],
      );
      await host.run(['ip', 'link', 'del', 'pndummy0']);
      await host.run(['rm', '-rf', dir]);
      expect(await settledDiff(host, baseline)).toEqual([]);
    });
  });
});
