// Networks as objects, end to end through `podnet network` and `podnet up`
// with the real plugins (bridge, host-local, portmap, firewall, tuning,
// dnsname + dnsmasq), each case on a throwaway host: the bridges, routes,
// iptables rules, dnsmasq and its files are made there and go with it, and
// its config dir (/run/podnet-test-net.d, on the host's tmpfs) holds only
// this test's networks. Traffic goes only between namespaces made here.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fixture } from '../../helpers/fixtures.js';
import { isRoot, PLUGIN_DIR } from '../../helpers/host.js';
import { reportSkip } from '../../helpers/skip.js';
import { type ThrowawayHost, throwawayHost } from '../../helpers/throwaway-host.js';

const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'tuning', 'dnsname'];
const missing = [
  ...PLUGINS.map((p) => join(PLUGIN_DIR, p)),
  '/usr/sbin/dnsmasq',
  '/usr/bin/nsenter',
  '/usr/bin/unshare',
].find((t) => !existsSync(t));
const skipReason = reportSkip(
  'the network object tests',
  !isRoot
    ? 'they need root'
    : missing === undefined
      ? undefined
      : `${missing} is missing (scripts/install-debian-deps.sh)`,
);

const CONF_DIR = '/run/podnet-test-net.d';
const CONF = ['--cni-config-dir', CONF_DIR];
const PROBE = fixture('networks/probe.mjs');

/** What `podnet inspect` says of a container (the fields these tests read). */
interface Settings {
  SandboxKey: string;
  IPAddress: string;
  Gateway: string;
  GlobalIPv6Address: string;
  IPv6Gateway: string;
}

describe.skipIf(skipReason !== undefined)('podnet network', () => {
  let host: ThrowawayHost | undefined;

  afterEach(async () => {
    await host?.close();
    host = undefined;
  });

  /** `podnet ARGS` in the host, with its config dir; fails the test unless it exits 0. */
  async function ok(...args: string[]): Promise<string> {
    const r = await host!.podnet([...args, ...CONF]);
    expect(r.stderr, `podnet ${args.join(' ')}`).toBe('');
    expect(r.code, `podnet ${args.join(' ')}`).toBe(0);
    return r.stdout;
  }

  async function fails(args: string[], code: number, line: RegExp): Promise<void> {
    const r = await host!.podnet([...args, ...CONF]);
    expect(r.code, args.join(' ')).toBe(code);
    expect(r.stdout, args.join(' ')).toBe('');
    expect(r.stderr, args.join(' ')).toMatch(line);
    expect(r.stderr.split('\n').filter(Boolean), args.join(' ')).toHaveLength(1);
  }

  const files = (): string[] =>
    readdirSync(host!.path(CONF_DIR))
      .filter((f) => f.endsWith('.conflist'))
      .sort();
  const conflist = (name: string) =>
    JSON.parse(readFileSync(host!.path(join(CONF_DIR, `${name}.conflist`)), 'utf8'));
  const inspect = async (name: string) => JSON.parse(await ok('network', 'inspect', name))[0];
  const up = async (id: string, ...nets: string[]): Promise<Settings> => {
    await ok('up', id, ...nets.flatMap((n) => ['--network', n]));
    return JSON.parse(await ok('inspect', id)) as Settings;
  };
  const probe = async (c: Settings, ...args: string[]) => {
    const r = await host!.run([
      'nsenter',
      `--net=${c.SandboxKey}`,
      '--',
      process.execPath,
      PROBE,
      ...args,
    ]);
    expect(r.stderr).toBe('');
    return JSON.parse(r.stdout);
  };
  const reach = async (from: Settings, to: Settings): Promise<string> =>
    (await probe(from, 'connect', to.IPAddress, '9', '1500')).result;

  it('create picks free subnets around host routes, writes options, and inspect speaks podman', async () => {
    host = await throwawayHost();
    // A host route over 10.89.1.0/24, as another interface of the machine would have.
    for (const argv of [
      ['ip', 'link', 'add', 'pt-route', 'type', 'bridge'],
      ['ip', 'addr', 'add', '10.89.1.1/24', 'dev', 'pt-route'],
      ['ip', 'link', 'set', 'pt-route', 'up'],
    ])
      expect((await host.run(argv)).stderr).toBe('');

    expect(await ok('network', 'create', 'one')).toBe('one\n');
    await ok('network', 'create', 'two');
    expect((await inspect('one')).subnets).toEqual([
      { subnet: '10.89.0.0/24', gateway: '10.89.0.1' },
    ]);
    expect((await inspect('two')).subnets).toEqual([
      { subnet: '10.89.2.0/24', gateway: '10.89.2.1' },
    ]);
    await fails(
      ['network', 'create', 'three', '--subnet', '10.89.1.128/25'],
      1,
      /^podnet: network 'three': subnet 10\.89\.1\.128\/25 overlaps 10\.89\.1\.0\/24 of a route of the host \[ERR_PODNET_SUBNET_OVERLAP\]\n$/,
    );

    await ok(
      'network',
      'create',
      'opts',
      '--subnet',
      '10.77.0.0/24',
      '--gateway',
      '10.77.0.254',
      '--ip-range',
      '10.77.0.128/25',
      '-o',
      'mtu=1400,vlan=7',
      '--opt',
      'isolate=true',
      '--label',
      'team=net',
      '--route',
      '10.78.0.0/16,10.77.0.9',
    );
    const file = conflist('opts');
    expect(statSync(host.path(join(CONF_DIR, 'opts.conflist'))).mode & 0o777).toBe(0o644);
    expect(file.args).toEqual({
      podman_labels: { team: 'net' },
      podman_options: { mtu: '1400', vlan: '7', isolate: 'true' },
    });
    expect(file.plugins.map((p: { type: string }) => p.type)).toEqual([
      'bridge',
      'portmap',
      'firewall',
      'tuning',
      'dnsname',
    ]);
    expect(file.plugins[0]).toMatchObject({
      mtu: 1400,
      vlan: 7,
      isGateway: true,
      ipMasq: true,
      ipam: {
        routes: [{ dst: '0.0.0.0/0' }, { dst: '10.78.0.0/16', gw: '10.77.0.9' }],
        ranges: [
          [
            {
              subnet: '10.77.0.0/24',
              gateway: '10.77.0.254',
              rangeStart: '10.77.0.129',
              rangeEnd: '10.77.0.254',
            },
          ],
        ],
      },
    });
    expect(file.plugins[2]).toEqual({
      type: 'firewall',
      backend: '',
      ingressPolicy: 'same-bridge',
    });
    expect(file.plugins[4]).toEqual({
      type: 'dnsname',
      domainName: 'dns.podman',
      capabilities: { aliases: true },
    });

    const net = await inspect('opts');
    expect(Object.keys(net)).toEqual(
      expect.arrayContaining([
        'name',
        'id',
        'driver',
        'network_interface',
        'created',
        'subnets',
        'ipv6_enabled',
        'internal',
        'dns_enabled',
        'options',
        'labels',
        'ipam_options',
        'containers',
      ]),
    );
    expect(net).toMatchObject({
      name: 'opts',
      driver: 'bridge',
      network_interface: 'cni-podman3',
      subnets: [
        {
          subnet: '10.77.0.0/24',
          gateway: '10.77.0.254',
          lease_range: { start_ip: '10.77.0.129', end_ip: '10.77.0.254' },
        },
      ],
      ipv6_enabled: false,
      internal: false,
      dns_enabled: true,
      options: { mtu: '1400', vlan: '7', isolate: 'true' },
      labels: { team: 'net' },
      ipam_options: { driver: 'host-local' },
      containers: {},
    });
    // podman's ID of a CNI network: sha256 of the name.
    expect(net.id).toBe(
      (await import('node:crypto')).createHash('sha256').update('opts').digest('hex'),
    );
    expect(Date.parse(net.created)).toBeGreaterThan(Date.now() - 600_000);

    // macvlan on a parent of the host's (the bridge above stands in for a NIC): one plugin, and a
    // container on it gets an address of its subnet (a subnet of the parent's LAN is allowed).
    await ok(
      'network',
      'create',
      'mv',
      '-d',
      'macvlan',
      '-o',
      'parent=pt-route,mode=bridge',
      '--subnet',
      '10.89.1.0/24',
    );
    expect(conflist('mv').plugins).toEqual([
      {
        type: 'macvlan',
        master: 'pt-route',
        ipam: {
          type: 'host-local',
          routes: [{ dst: '0.0.0.0/0' }],
          ranges: [[{ subnet: '10.89.1.0/24', gateway: '10.89.1.1' }]],
        },
        mode: 'bridge',
        capabilities: { ips: true },
      },
    ]);
    const m = await up('ctrm', 'mv');
    expect(m.IPAddress).toMatch(/^10\.89\.1\.\d+$/);
    expect((await inspect('mv')).network_interface).toBe('pt-route');
    await ok('down', 'ctrm');
    await fails(
      ['network', 'create', 'mv2', '-d', 'ipvlan', '-o', 'parent=nope0'],
      1,
      /parent interface 'nope0' does not exist \[ERR_PODNET_NETWORK_OPTION\]/,
    );

    const ls = JSON.parse(await ok('network', 'ls', '--json', '--filter', 'label=team=net'));
    expect(ls.map((n: { name: string }) => n.name)).toEqual(['opts']);
    expect(JSON.parse(await ok('networks', '--json')).map((n: { name: string }) => n.name)).toEqual(
      ['podman', 'mv', 'one', 'opts', 'two'],
    );
    expect(JSON.parse(await ok('networks', 'inspect', 'two'))[0].name).toBe('two');
    expect((await host.podnet(['network', 'exists', 'two', ...CONF])).code).toBe(0);
    const absent = await host.podnet(['network', 'exists', 'nope', ...CONF]);
    expect([absent.code, absent.stdout, absent.stderr]).toEqual([1, '', '']);

    // Bad input: one line, a typed code, no file written.
    const before = files();
    await fails(
      ['network', 'create', 'a/b'],
      2,
      /^podnet: network name "a\/b" is invalid: .* \[ERR_PODNET_INVALID_ARGUMENT\]\n$/,
    );
    await fails(
      ['network', 'create', 'gw', '--subnet', '10.60.0.0/24', '--gateway', '10.61.0.1'],
      2,
      /gateway 10\.61\.0\.1 is not in subnet 10\.60\.0\.0\/24 \[ERR_PODNET_INVALID_ARGUMENT\]/,
    );
    await fails(
      ['network', 'create', 'op', '-o', 'frob=1'],
      1,
      /unsupported network option 'frob' \[ERR_PODNET_NETWORK_OPTION\]/,
    );
    await fails(
      ['network', 'create', 'ov', '--subnet', '10.50.0.0/16', '--subnet', '10.50.3.0/24'],
      1,
      /\[ERR_PODNET_SUBNET_OVERLAP\]/,
    );
    await fails(
      ['network', 'create', 'ov2', '--subnet', '10.89.0.0/16'],
      1,
      /overlaps 10\.89\.1\.0\/24 of network 'mv' \[ERR_PODNET_SUBNET_OVERLAP\]/,
    );
    await fails(
      ['network', 'create', 'two'],
      1,
      /^podnet: network 'two': a network of that name exists \[ERR_PODNET_NETWORK_EXISTS\]\n$/,
    );
    expect(files()).toEqual(before);
  });

  it('rm refuses a used network, --force tears its containers down and removes its bridge; prune keeps used ones', async () => {
    host = await throwawayHost();
    await ok('network', 'create', 'used');
    await ok('network', 'create', 'idle1');
    await ok('network', 'create', 'idle2', '--disable-dns');
    const c = await up('ctr1', 'used');
    expect(c.IPAddress).toMatch(/^10\.89\.0\.\d+$/);

    const net = await inspect('used');
    expect(net.containers).toEqual({
      ctr1: {
        name: 'ctr1',
        interfaces: {
          eth0: {
            subnets: [{ ipnet: `${c.IPAddress}/24`, gateway: '10.89.0.1' }],
            mac_address: expect.stringMatching(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/),
          },
        },
      },
    });
    await fails(
      ['network', 'rm', 'used'],
      1,
      /^podnet: network 'used': used by ctr1 \(force tears them down first\) \[ERR_PODNET_NETWORK_IN_USE\]\n$/,
    );
    expect(JSON.parse(await ok('network', 'prune', '--json'))).toEqual(['idle1', 'idle2']);
    expect(files()).toEqual(['used.conflist']);

    expect((await host.run(['ip', 'link', 'show', 'cni-podman1'])).code).toBe(0);
    expect(await ok('network', 'rm', 'used', '--force')).toBe('used\n');
    expect(files()).toEqual([]);
    expect(existsSync(host.path('/run/podnet/ctr1.json'))).toBe(false);
    expect(existsSync(host.path(c.SandboxKey))).toBe(false);
    expect((await host.run(['ip', 'link', 'show', 'cni-podman1'])).code).not.toBe(0);
    await fails(['network', 'rm', 'podman'], 2, /default network 'podman' cannot be removed/);
  });

  it('DNS: a container resolves another by name on its network, not across networks, and not once it is gone', async () => {
    host = await throwawayHost();
    await ok('network', 'create', 'dnsa');
    await ok('network', 'create', 'dnsb');
    const a = await up('ctra', 'dnsa');
    const b = await up('ctrb', 'dnsa');
    const c = await up('ctrc', 'dnsb');
    // `PID CMDLINE` lines: the program is the second word.
    const dnsmasq = () => host!.processes().filter((p) => p.split(' ')[1]?.endsWith('dnsmasq'));
    expect(dnsmasq()).toHaveLength(2); // one per network, on its bridge

    expect(await probe(a, 'resolve', a.Gateway, 'ctrb')).toEqual({ addresses: [b.IPAddress] });
    expect(await probe(a, 'resolve', a.Gateway, 'ctrb.dns.podman')).toEqual({
      addresses: [b.IPAddress],
    });
    // Names under dns.podman are answered locally only (dnsmasq's local=), so these never leave the host.
    expect(await probe(c, 'resolve', c.Gateway, 'ctrb.dns.podman')).toEqual({ error: 'ENOTFOUND' });
    expect(await probe(c, 'resolve', c.Gateway, 'ctrc.dns.podman')).toEqual({
      addresses: [c.IPAddress],
    });

    await ok('down', 'ctrb');
    expect(await probe(a, 'resolve', a.Gateway, 'ctrb.dns.podman')).toEqual({ error: 'ENOTFOUND' });
    await ok('down', 'ctra');
    await ok('down', 'ctrc');
    // dnsname stops a network's dnsmasq with its last container.
    expect(dnsmasq()).toEqual([]);
  });

  it('isolate: containers on two isolated networks cannot reach each other, two on one network can', async () => {
    host = await throwawayHost();
    await ok('network', 'create', 'iso1', '-o', 'isolate=true');
    await ok('network', 'create', 'iso2', '-o', 'isolate=true');
    await ok('network', 'create', 'open1');
    await ok('network', 'create', 'open2');
    const x1 = await up('x1', 'iso1');
    const x2 = await up('x2', 'iso2');
    const x3 = await up('x3', 'iso1');
    const o1 = await up('o1', 'open1');
    const o2 = await up('o2', 'open2');

    expect(await reach(x1, x3)).toBe('refused'); // same bridge: the peer's kernel answers
    expect(await reach(x1, x2)).toBe('timeout'); // dropped by CNI-ISOLATION
    expect(await reach(x2, x1)).toBe('timeout');
    expect(await reach(o1, o2)).toBe('refused'); // without isolate the host routes between bridges
    for (const id of ['x1', 'x2', 'x3', 'o1', 'o2']) await ok('down', id);
  });

  it('internal: no outbound route and no masquerade; --ipv6: an IPv4 and an IPv6 address, in both inspects', async () => {
    host = await throwawayHost();
    await ok('network', 'create', 'inner', '--internal');
    expect(conflist('inner').plugins[0]).toMatchObject({ isGateway: false });
    expect(conflist('inner').plugins[0].ipMasq).toBeUndefined();
    const i = await up('ctri', 'inner');
    expect(i.IPAddress).toMatch(/^10\.89\.0\.\d+$/);
    const routes = await host.run([
      'nsenter',
      `--net=${i.SandboxKey}`,
      '--',
      'ip',
      '-j',
      'route',
      'show',
    ]);
    const dsts = JSON.parse(routes.stdout).map((r: { dst: string }) => r.dst);
    expect(dsts).toEqual(['10.89.0.0/24']);
    expect((await inspect('inner')).dns_enabled).toBe(false);

    await ok('network', 'create', 'dual', '--ipv6', '--subnet', 'fd00:89:1:2::/64');
    const net = await inspect('dual');
    expect(net.subnets).toEqual([
      { subnet: 'fd00:89:1:2::/64', gateway: 'fd00:89:1:2::1' },
      { subnet: '10.89.1.0/24', gateway: '10.89.1.1' },
    ]);
    expect(net.ipv6_enabled).toBe(true);
    const d = await up('ctrd', 'dual');
    expect(d.IPAddress).toMatch(/^10\.89\.1\.\d+$/);
    expect(d.GlobalIPv6Address).toMatch(/^fd00:89:1:2::[0-9a-f]+$/);
    expect(d.IPv6Gateway).toBe('fd00:89:1:2::1');
    const ifs = (await inspect('dual')).containers.ctrd.interfaces.eth0.subnets;
    expect(ifs).toEqual([
      { ipnet: `${d.GlobalIPv6Address}/64`, gateway: 'fd00:89:1:2::1' },
      { ipnet: `${d.IPAddress}/24`, gateway: '10.89.1.1' },
    ]);
    await ok('down', 'ctri');
    await ok('down', 'ctrd');
  });
});
