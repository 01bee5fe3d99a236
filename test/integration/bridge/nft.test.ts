// podnet's nftables table (src/bridge/nft/) on a real kernel, each test in
// a throwaway host (net + mount namespace) so the machine's own ruleset is
// never touched: the table made once however many processes race, its
// content after each batch read back with nft(8), and real TCP and UDP
// traffic through published ports from an "outside" namespace, from the
// host's 127.0.0.1 and from another container (hairpin), plus outbound
// masquerade, beside another tool's iptables-nft rules.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type FirewallNetwork,
  type FirewallPort,
  MAX_PORTS,
  PodnetTable,
} from '../../../src/bridge/nft/index.js';
import { isPodnetError } from '../../../src/errors.js';
import { NetworkNamespace } from '../../../src/netns/index.js';
import { fixture } from '../../helpers/fixtures.js';
import { isRoot } from '../../helpers/host.js';
import { NFT_LIST_PODNET } from '../../helpers/nft.js';
import { type ThrowawayHost, throwawayHost } from '../../helpers/throwaway-host.js';

const ECHO = fixture('nft/echo.mjs');
/** What nft lists for the table nft itself makes from structure.nft. */
const STRUCTURE = readFileSync(fixture('nft/structure.list'), 'utf8');

const NET: FirewallNetwork = {
  name: 'podnet',
  bridge: 'pbr0',
  subnets: ['10.88.0.0/24'],
  masquerade: true,
};
const C1 = '10.88.0.2';
const C2 = '10.88.0.3';
const OUTSIDE_HOST = '192.168.77.1'; // the host's address on the outside link
const OUTSIDE = '192.168.77.2';
const C1_6 = 'fd00:88::2';
const C2_6 = 'fd00:88::3';
const OUTSIDE_HOST6 = 'fd00:77::1';
const OUTSIDE6 = 'fd00:77::2';

const tcp = (hostPort: number, containerIP = C1, hostIP?: string): FirewallPort => ({
  protocol: 'tcp',
  hostPort,
  containerIP,
  containerPort: 80,
  ...(hostIP === undefined ? {} : { hostIP }),
});
const udp = (hostPort: number, hostIP?: string, containerIP = C1): FirewallPort => ({
  protocol: 'udp',
  hostPort,
  containerIP,
  containerPort: 53,
  ...(hostIP === undefined ? {} : { hostIP }),
});

/** STRUCTURE with `elements = { ... }` in the named sets, as nft lists them. */
function withElements(elements: Record<string, string>): string {
  const out: string[] = [];
  let set: string | undefined;
  for (const line of STRUCTURE.split('\n')) {
    const m = /^\t(?:set|map) (\S+) \{$/.exec(line);
    if (m) set = m[1];
    if (line === '\t}' && set) {
      if (elements[set] !== undefined) out.push(`\t\telements = { ${elements[set]} }`);
      set = undefined;
    }
    out.push(line);
  }
  return out.join('\n');
}

async function must(host: ThrowawayHost, argv: string[]): Promise<string> {
  const r = await host.run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} in the throwaway host: ${r.stderr}`);
  return r.stdout;
}

async function listTable(host: ThrowawayHost): Promise<string> {
  return must(host, NFT_LIST_PODNET);
}

/**
 * The host's bridge pbr0 (10.88.0.1/24 and fd00:88::1/64, route_localnet
 * as the integrator sets it) with containers c1 and c2 on it, and an
 * "outside" namespace on a veth (192.168.77.0/24, fd00:77::/64);
 * forwarding on.
 */
async function buildTopology(host: ThrowawayHost): Promise<void> {
  const steps = [
    'ip link add pbr0 type bridge',
    'ip addr add 10.88.0.1/24 dev pbr0',
    'ip link set pbr0 up',
    'sysctl -qw net.ipv4.ip_forward=1',
    'sysctl -qw net.ipv4.conf.pbr0.route_localnet=1',
    'sysctl -qw net.ipv6.conf.all.forwarding=1',
    'ip addr add fd00:88::1/64 dev pbr0 nodad',
    ...[
      ['c1', C1, C1_6],
      ['c2', C2, C2_6],
    ].flatMap(([c, ip, ip6]) => [
      `ip netns add ${c}`,
      `ip link add v${c} type veth peer name eth0 netns ${c}`,
      `ip link set v${c} master pbr0 up`,
      `ip -n ${c} addr add ${ip}/24 dev eth0`,
      `ip -n ${c} link set eth0 up`,
      `ip -n ${c} link set lo up`,
      `ip -n ${c} route add default via 10.88.0.1`,
      `ip -n ${c} addr add ${ip6}/64 dev eth0 nodad`,
      `ip -n ${c} route add default via fd00:88::1`,
    ]),
    'ip netns add out',
    'ip link add vout type veth peer name eth0 netns out',
    `ip addr add ${OUTSIDE_HOST}/24 dev vout`,
    'ip link set vout up',
    `ip -n out addr add ${OUTSIDE}/24 dev eth0`,
    'ip -n out link set eth0 up',
    'ip -n out link set lo up',
    `ip addr add ${OUTSIDE_HOST6}/64 dev vout nodad`,
    `ip -n out addr add ${OUTSIDE6}/64 dev eth0 nodad`,
    // A route back to the containers, so an unmasqueraded answer finds its way.
    `ip -n out route add fd00:88::/64 via ${OUTSIDE_HOST6}`,
  ];
  for (const s of steps) await must(host, s.split(' '));
}

// `ip netns exec` gives its process a mount namespace of its own, so the
// throwaway host does not know it as its own: the test kills it itself.
const servers = new Set<ChildProcess>();

/** Starts the echo servers in namespace NS of the host and waits until they listen. */
async function serve(host: ThrowawayHost, ns: string): Promise<void> {
  const child = host.spawn(['ip', 'netns', 'exec', ns, process.execPath, ECHO, 'serve']);
  servers.add(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`echo server in ${ns} exited (${code})`)));
  });
}

/** One request from namespace NS (undefined: the host itself): the answer, or '' for none. */
async function ask(
  host: ThrowawayHost,
  ns: string | undefined,
  proto: 'tcp' | 'udp',
  addr: string,
  port: number,
): Promise<string> {
  const where = ns ? ['ip', 'netns', 'exec', ns] : [];
  const r = await host.run([...where, process.execPath, ECHO, proto, addr, String(port)]);
  return r.code === 0 ? r.stdout : '';
}

describe.skipIf(!isRoot)("podnet's nftables table", () => {
  let host: ThrowawayHost;
  let netns: NetworkNamespace;
  let table: PodnetTable | undefined;

  beforeEach(async () => {
    host = await throwawayHost();
    netns = await NetworkNamespace.open(`/proc/${host.pid}/ns/net`);
  });

  afterEach(async () => {
    for (const child of servers) {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.kill('SIGKILL')) await exited;
    }
    servers.clear();
    table?.close();
    table = undefined;
    netns.close();
    await host.close();
  });

  it('is made once, exactly as nft makes it, however many processes race to make it', async () => {
    const startAt = Date.now() + 1500;
    const racers = Array.from({ length: 6 }, () =>
      host.run(
        [
          process.execPath,
          '--import',
          fixture('../helpers/start-barrier.mjs'),
          fixture('nft/open-table.mjs'),
        ],
        {
          PODNET_TEST_PRELOAD: new URL('../../../dist/bridge/nft/index.js', import.meta.url).href,
          PODNET_TEST_START_AT: String(startAt),
        },
      ),
    );
    const results = await Promise.all(racers);
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0, stdout: 'ok\n' });
    expect(await listTable(host)).toBe(STRUCTURE);
    const tables = await must(host, ['nft', 'list', 'tables']);
    expect(tables.match(/table inet podnet/g)).toHaveLength(1);
    // Opening again (the table there) changes nothing.
    table = await PodnetTable.open({ netns });
    expect(await listTable(host)).toBe(STRUCTURE);
  });

  it("holds exactly a container's elements after add, and the bare structure after remove", async () => {
    table = await PodnetTable.open({ netns });
    const ports = [tcp(8080), udp(5353, '127.0.0.1'), tcp(8443, C1, '0.0.0.0')];
    table.addContainer(NET, { ports });
    expect(await listTable(host)).toBe(
      withElements({
        subnets4: '10.88.0.0/24',
        masq4: '10.88.0.0/24',
        bridges: '"pbr0"',
        dnat4: '127.0.0.1 . udp . 5353 : 10.88.0.2 . 53',
        dnat4any: 'tcp . 8080 : 10.88.0.2 . 80,\n\t\t\t     tcp . 8443 : 10.88.0.2 . 80',
      }),
    );
    // The same setup again (a retried step) changes nothing.
    table.addContainer(NET, { ports });
    const added = await listTable(host);
    expect(added).toContain('tcp . 8443 : 10.88.0.2 . 80');

    expect(table.removeContainer(NET, { ports })).toEqual({ foreign: [] });
    const network = withElements({
      subnets4: '10.88.0.0/24',
      masq4: '10.88.0.0/24',
      bridges: '"pbr0"',
    });
    expect(await listTable(host)).toBe(network);
    // Removing what is gone already is no error (an undo after a crash runs again).
    expect(table.removeContainer(NET, { ports })).toEqual({ foreign: [] });
    expect(await listTable(host)).toBe(network);
    table.removeNetwork(NET);
    expect(await listTable(host)).toBe(STRUCTURE);
    table.removeNetwork(NET);
    expect(await listTable(host)).toBe(STRUCTURE);
  });

  it("keeps one container from taking or removing another's host port", async () => {
    table = await PodnetTable.open({ netns });
    table.addContainer(NET, { ports: [tcp(8080, C1)] });
    const before = await listTable(host);
    let err: unknown;
    try {
      table.addContainer(NET, { ports: [tcp(9090, C2), tcp(8080, C2)] });
    } catch (e) {
      err = e;
    }
    expect(isPodnetError(err) && err.code).toBe('ERR_PODNET_PORT_IN_USE');
    expect((err as Error).message).toContain('tcp 8080 -> 10.88.0.3 80');
    // All or nothing: port 9090 was not added either.
    expect(await listTable(host)).toBe(before);
    // C2's teardown of a port that is C1's leaves it to C1, and says so.
    const report = table.removeContainer(NET, { ports: [tcp(9090, C2), tcp(8080, C2)] });
    expect(report.foreign).toEqual([tcp(8080, C2)]);
    expect(await listTable(host)).toBe(before);
  });

  it('refuses bad input with a typed error and sends nothing', async () => {
    table = await PodnetTable.open({ netns });
    table.ensureNetwork(NET);
    const before = await listTable(host);
    const bad: [FirewallNetwork, FirewallPort[]][] = [
      [NET, [tcp(0)]],
      [NET, [{ ...tcp(8080), containerPort: 70000 }]],
      [NET, [tcp(8080, '10.88.0.300')]],
      [NET, [tcp(8080, C1, '127.1')]],
      [NET, [tcp(8080, C1, 'fd00::1')]],
      [NET, [tcp(8080, '10.99.0.2')]],
      [NET, [{ ...tcp(8080), protocol: 'sctp' as 'tcp' }]],
      [NET, [tcp(8080), tcp(8080)]],
      [{ ...NET, bridge: 'a/b' }, [tcp(8080)]],
      [{ ...NET, subnets: ['10.88.0.0/33'] }, [tcp(8080)]],
      [{ ...NET, subnets: ['10.88/16'] }, [tcp(8080)]],
      [{ ...NET, subnets: [] }, [tcp(8080)]],
      [NET, Array.from({ length: MAX_PORTS + 1 }, (_, i) => tcp(1 + i))],
    ];
    for (const [net, ports] of bad) {
      expect(() => table!.addContainer(net, { ports }), JSON.stringify(ports)).toThrow(
        expect.objectContaining({ code: 'ERR_PODNET_INVALID_ARGUMENT' }),
      );
      expect(() => table!.removeContainer(net, { ports })).toThrow(
        expect.objectContaining({ code: 'ERR_PODNET_INVALID_ARGUMENT' }),
      );
    }
    expect(await listTable(host)).toBe(before);
  });

  it('carries TCP and UDP to a container from outside, from 127.0.0.1 and from another container', async () => {
    await buildTopology(host);
    await serve(host, 'c1');
    table = await PodnetTable.open({ netns });
    // Nothing published yet: no answer.
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe('');
    table.addContainer(NET, {
      ports: [tcp(8080), udp(5353), tcp(8081, C1, '127.0.0.1'), udp(5354, '127.0.0.1')],
    });
    // From outside: DNAT only, the container sees the client's own address.
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe(`tcp ${OUTSIDE}`);
    expect(await ask(host, 'out', 'udp', OUTSIDE_HOST, 5353)).toBe(`udp ${OUTSIDE}`);
    // A port published on 127.0.0.1 only is not reachable from outside.
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8081)).toBe('');
    // From the host's 127.0.0.1: masqueraded to the bridge's address.
    expect(await ask(host, undefined, 'tcp', '127.0.0.1', 8080)).toBe('tcp 10.88.0.1');
    expect(await ask(host, undefined, 'tcp', '127.0.0.1', 8081)).toBe('tcp 10.88.0.1');
    expect(await ask(host, undefined, 'udp', '127.0.0.1', 5354)).toBe('udp 10.88.0.1');
    // Hairpin: c2 through a host address, masqueraded so c1's answer comes back through the host.
    expect(await ask(host, 'c2', 'tcp', OUTSIDE_HOST, 8080)).toBe('tcp 10.88.0.1');
    expect(await ask(host, 'c2', 'udp', '10.88.0.1', 5353)).toBe('udp 10.88.0.1');
    // Outbound: c1 to the outside is masqueraded to the host's outside address.
    await serve(host, 'out');
    expect(await ask(host, 'c1', 'tcp', OUTSIDE, 80)).toBe(`tcp ${OUTSIDE_HOST}`);

    table.removeContainer(NET, {
      ports: [tcp(8080), udp(5353), tcp(8081, C1, '127.0.0.1'), udp(5354, '127.0.0.1')],
    });
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe('');
    expect(await ask(host, undefined, 'tcp', '127.0.0.1', 8081)).toBe('');
  });

  it('carries IPv6 the same way, and masquerades an IPv6 network leaving its subnet', async () => {
    await buildTopology(host);
    await serve(host, 'c1');
    await serve(host, 'out');
    table = await PodnetTable.open({ netns });
    const net = { ...NET, subnets: ['10.88.0.0/24', 'fd00:88::/64'] };
    const ports = [tcp(8080, C1_6), udp(5353, undefined, C1_6), tcp(8082, C1_6, OUTSIDE_HOST6)];
    table.addContainer(net, { ports });
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST6, 8080)).toBe(`tcp ${OUTSIDE6}`);
    expect(await ask(host, 'out', 'udp', OUTSIDE_HOST6, 5353)).toBe(`udp ${OUTSIDE6}`);
    // On one host address only: reachable there, not through the bridge's address.
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST6, 8082)).toBe(`tcp ${OUTSIDE6}`);
    expect(await ask(host, 'c2', 'tcp', 'fd00:88::1', 8082)).toBe('');
    // An IPv6 port publishes nothing for IPv4.
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe('');
    // Hairpin and outbound masquerade, over IPv6.
    expect(await ask(host, 'c2', 'tcp', OUTSIDE_HOST6, 8080)).toBe('tcp fd00:88::1');
    expect(await ask(host, 'c1', 'tcp', OUTSIDE6, 80)).toBe(`tcp ${OUTSIDE_HOST6}`);
    table.removeContainer(net, { ports });
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST6, 8080)).toBe('');
    table.removeNetwork(net);
    // Without ipMasq the container's own address reaches the outside.
    table.ensureNetwork({ ...net, masquerade: false });
    expect(await ask(host, 'c1', 'tcp', OUTSIDE6, 80)).toBe(`tcp ${C1_6}`);
  });

  it("survives another tool's iptables-nft rules beside it, and their flush", async () => {
    await buildTopology(host);
    await serve(host, 'c1');
    table = await PodnetTable.open({ netns });
    table.addContainer(NET, { ports: [tcp(8080), udp(5353)] });
    const ours = await listTable(host);
    for (const rule of [
      'iptables-nft -t nat -A POSTROUTING -s 10.99.0.0/16 -j MASQUERADE',
      'iptables-nft -t nat -A PREROUTING -p tcp --dport 9999 -j DNAT --to-destination 10.99.0.2:80',
      'iptables-nft -A FORWARD -s 10.99.0.0/16 -j ACCEPT',
      'iptables-nft -A INPUT -p tcp --dport 9999 -j ACCEPT',
    ])
      await must(host, rule.split(' '));
    expect(await listTable(host)).toBe(ours);
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe(`tcp ${OUTSIDE}`);
    await must(host, ['iptables-nft', '-F']);
    await must(host, ['iptables-nft', '-t', 'nat', '-F']);
    expect(await listTable(host)).toBe(ours);
    expect(await ask(host, 'out', 'tcp', OUTSIDE_HOST, 8080)).toBe(`tcp ${OUTSIDE}`);
    expect(await ask(host, 'out', 'udp', OUTSIDE_HOST, 5353)).toBe(`udp ${OUTSIDE}`);
  });

  it('makes the table again when another tool flushed the whole ruleset', async () => {
    table = await PodnetTable.open({ netns });
    await must(host, ['nft', 'flush', 'ruleset']);
    table.addContainer(NET, { ports: [tcp(8080)] });
    expect(await listTable(host)).toContain('tcp . 8080 : 10.88.0.2 . 80');
    // Removal with no table at all is no error either.
    await must(host, ['nft', 'flush', 'ruleset']);
    expect(table.removeContainer(NET, { ports: [tcp(8080)] })).toEqual({ foreign: [] });
  });
});
