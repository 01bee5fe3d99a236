// Link statistics against a real kernel: RTM_GETSTATS (linkStatsSync,
// linkStats) and RTM_GETLINK (links()) agree with iproute2 on every
// counter; the name -> index cache follows a link made again under the same
// name; the sweep agrees with reading each namespace on its own.
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ClosedError,
  LinkNotFoundError,
  type LinkStats,
  NetworkNamespace,
} from '../../../src/index.js';
import { native } from '../../../src/native.js';
import { linkStatsFields, statsFromCounters } from '../../../src/netns/rtnl.js';
import { createTopology, type Topology } from '../../../src/testing/index.js';
import { inNetns, isRoot, type NetnsDir, tempNetnsDir } from '../../helpers/host.js';
import { type IpStats64, linkStatsFromIp } from '../../helpers/ip-stats.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const EBADF = 9;
const ENODEV = 19;
const EINVAL = 22;

async function ipStats(ns: NetworkNamespace, dev: string): Promise<LinkStats> {
  const s = JSON.parse(
    await inNetns(ns.path, ['ip', '-s', '-s', '-j', 'link', 'show', 'dev', dev]),
  )[0].stats64 as IpStats64;
  return linkStatsFromIp(s);
}

/** Sends BYTES over TCP from B to A (A at HOST) and waits for the close. */
async function traffic(a: NetworkNamespace, b: NetworkNamespace, host: string, bytes: number) {
  const server = net.createServer((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const { port } = await a.listen(server, { host, port: 0 });
  const client = await b.connect({ host, port });
  client.resume();
  client.end(Buffer.alloc(bytes, 1));
  await new Promise((r) => client.on('close', r));
  await new Promise((r) => server.close(r));
}

/**
 * Waits until eth0's counters in every one of NSS stay the same for 300 ms
 * (a connection's last segments, an RST, may still be on their way), so
 * reads compared afterwards see the same figures.
 */
async function settle(nss: NetworkNamespace[]): Promise<void> {
  const read = () => JSON.stringify(nss.map((ns) => ns.linkStatsSync('eth0')));
  let last = read();
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = read();
    if (now === last) return;
    last = now;
  }
  throw new Error('the counters did not settle within 15 s');
}

/** Waits until lo's counters in NS stay the same for 300 ms (the connection's last segments). */
async function settleLo(ns: NetworkNamespace): Promise<void> {
  let last = JSON.stringify(ns.linkStatsSync('lo'));
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 300));
    const now = JSON.stringify(ns.linkStatsSync('lo'));
    if (now === last) return;
    last = now;
  }
  throw new Error('the counters did not settle within 15 s');
}

describe.skipIf(!isRoot)('link statistics', () => {
  let tmp: NetnsDir;
  const made: NetworkNamespace[] = [];
  const topologies: Topology[] = [];

  /**
   * Hosts joined by a veth or a bridge (eth0 in each, SUBNET), IPv6 off
   * everywhere so no stray packet moves a counter.
   */
  const hosts = async (subnet: string, count: number): Promise<NetworkNamespace[]> => {
    const topo = await createTopology({ dir: tmp.dir, subnet, hosts: count });
    topologies.push(topo);
    const nss = topo.hosts.map((h) => h.ns);
    for (const ns of [...nss, ...(topo.switch ? [topo.switch] : [])])
      await inNetns(ns.path, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    return nss;
  };

  beforeEach(() => {
    tmp = tempNetnsDir();
  });
  afterEach(async () => {
    for (const ns of made.splice(0)) await ns.remove();
    for (const topo of topologies.splice(0)) await topo.remove();
    await tmp.cleanup();
  });

  it('RTM_GETSTATS (sync, async, bigint) and RTM_GETLINK agree with ip -s -s -j link on every counter', async () => {
    const [a, b] = (await hosts('10.231.9.0/24', 2)) as [NetworkNamespace, NetworkNamespace];
    await traffic(a, b, '10.231.9.1', 300_000);
    await settle([a, b]);
    const ip = await ipStats(a, 'eth0');
    expect(ip.rxBytes).toBeGreaterThan(300_000);
    expect(a.linkStatsSync('eth0')).toEqual(ip);
    expect(await a.linkStats('eth0')).toEqual(ip);
    const big = a.linkStatsSync('eth0', { bigint: true });
    const bigAsync = await a.linkStats('eth0', { bigint: true });
    for (const f of linkStatsFields) {
      expect(big[f]).toBe(BigInt(ip[f]));
      expect(bigAsync[f]).toBe(BigInt(ip[f]));
    }
    const viaGetlink = (await a.links()).find((l) => l.name === 'eth0')!.statistics;
    expect(viaGetlink).toEqual(ip);
    expect(await ipStats(a, 'eth0')).toEqual(ip); // nothing moved meanwhile
  });

  it('follows a link deleted and made again under the same name (a new index)', async () => {
    const ns = await NetworkNamespace.create({ dir: tmp.dir, name: 'again' });
    made.push(ns);
    await ns.addVeth('x0', { name: 'x1' });
    await ns.setLinkUp('x0');
    const first = (await ns.link('x0')).index;
    expect(ns.linkStatsSync('x0').rxPackets).toBe(0);
    expect((await ns.linkStats('x0')).txPackets).toBe(0);
    await ns.deleteLink('x0');
    expect(() => ns.linkStatsSync('x0')).toThrow(LinkNotFoundError);
    await expect(ns.linkStats('x0')).rejects.toBeInstanceOf(LinkNotFoundError);
    await ns.addVeth('x0', { name: 'x1' });
    expect((await ns.link('x0')).index).not.toBe(first);
    // Read from the cache's stale index first: ENODEV, then the new index.
    expect(ns.linkStatsSync('x0')).toEqual(await ipStats(ns, 'x0'));
    await ns.deleteLink('x0');
    await ns.addVeth('x0', { name: 'x1' });
    expect(await ns.linkStats('x0')).toEqual(await ipStats(ns, 'x0'));
  });

  it("the addon's read by index: the counters ip shows, ENODEV, and EINVAL / EBADF as numbers", async () => {
    const ns = await NetworkNamespace.create({ dir: tmp.dir, name: 'reader' });
    made.push(ns);
    await ns.setLinkUp('lo');
    await traffic(ns, ns, '127.0.0.1', 20_000);
    await settleLo(ns);
    const open = () => {
      const nsfd = openSync(ns.path, 'r');
      try {
        return native.socketInSync(nsfd, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
      } finally {
        closeSync(nsfd);
      }
    };
    const counters = new Float64Array(linkStatsFields.length);
    const sock = new native.RtnlSocket(open(), counters);
    const read = sock.statsReader();
    // lo is ifindex 1 in every namespace.
    expect(read(1)).toBeGreaterThanOrEqual(23);
    const ip = await ipStats(ns, 'lo');
    expect(ip.rxBytes).toBeGreaterThan(20_000);
    expect(statsFromCounters(counters)).toEqual(ip);
    expect(read(0x7fff_fff0)).toBe(-ENODEV);
    expect(read('1' as unknown as number)).toBe(-EINVAL);
    sock.close();
    expect(read(1)).toBe(-EBADF);
    const bare = new native.RtnlSocket(open());
    expect(bare.statsReader()(1)).toBe(-EINVAL); // no counters to write to
    bare.close();
  });

  it('reads while requests on the same socket wait on the libuv pool, each getting its own reply', async () => {
    const ns = await NetworkNamespace.create({ dir: tmp.dir, name: 'mixed' });
    made.push(ns);
    await ns.setLinkUp('lo');
    ns.linkStatsSync('lo'); // the kept socket, and lo's index cached
    for (let i = 0; i < 50; i++) {
      // Queued on the pool, on the socket the synchronous read uses too:
      // microtask turns let them reach the addon, and their completions
      // cannot run before the loop turns.
      const links = ns.links();
      const addresses = ns.addresses();
      for (let t = 0; t < 10; t++) await Promise.resolve();
      const s = ns.linkStatsSync('lo');
      expect(Object.keys(s)).toEqual([...linkStatsFields]);
      expect((await links).map((l) => l.name)).toEqual(['lo']);
      expect((await addresses).map((a) => a.address).sort()).toEqual(['127.0.0.1', '::1']);
    }
  });

  it('a sweep reads every namespace in one call, as each reads on its own', async () => {
    const nss = await hosts('10.231.10.0/24', 5);
    // Different traffic into each, from the last.
    for (let i = 0; i < 4; i++)
      await traffic(nss[i]!, nss[4]!, `10.231.10.${i + 1}`, (i + 1) * 50_000);
    await settle(nss);
    const sweep = NetworkNamespace.statsSweep(nss, 'eth0');
    // A stray packet (IPv6 neighbour discovery) may still move a counter
    // between two reads: compare only reads that the reads around them
    // agree with, and settle again otherwise (a sweep that reads wrong
    // never agrees, and the loop ends in the failure below).
    const read = () => nss.map((ns) => ns.linkStatsSync('eth0'));
    let alone = read();
    let swept = sweep.readSync();
    for (let tries = 0; tries < 20; tries++) {
      const again = sweep.readSync(); // read again: the same, nothing moved
      const after = read();
      if (JSON.stringify([alone, swept, again]) === JSON.stringify([after, after, after])) break;
      await settle(nss);
      alone = read();
      swept = sweep.readSync();
    }
    expect(swept).toEqual(alone);
    expect(new Set(swept.map((s) => (s as LinkStats).rxBytes)).size).toBe(5);
    // (That they agree with ip(8), counter by counter, is the first case's.)
    // An asynchronous read beside it, on the same channel, gets its own reply.
    const busy = nss[0]!.linkStats('eth0');
    const beside = sweep.readSync();
    expect((await busy).rxBytes).toBe((beside[0] as LinkStats).rxBytes);

    // A link made again under its name (a new index), one removed, a
    // namespace closed: the new link's counters, the errors in their
    // places, the others' counters unchanged.
    await inNetns(nss[3]!.path, ['ip', 'link', 'del', 'eth0']);
    await nss[3]!.addVeth('eth0', { name: 'peer3' });
    await inNetns(nss[1]!.path, ['ip', 'link', 'del', 'eth0']);
    const closed = await NetworkNamespace.open(nss[2]!.path);
    const mixedSweep = NetworkNamespace.statsSweep([nss[0]!, nss[1]!, closed, nss[3]!], 'eth0');
    closed.close();
    for (let round = 0; round < 2; round++) {
      const mixed = mixedSweep.readSync();
      // Read right after the sweep: the same counters, unless a packet came between.
      expect((mixed[0] as LinkStats).rxBytes).toBe(nss[0]!.linkStatsSync('eth0').rxBytes);
      expect(mixed[1]).toBeInstanceOf(LinkNotFoundError);
      expect(mixed[2]).toBeInstanceOf(ClosedError);
      expect(mixed[3]).toEqual(await ipStats(nss[3]!, 'eth0'));
      expect((mixed[3] as LinkStats).rxPackets).toBe(0);
    }
    mixedSweep.close();
    expect(() => mixedSweep.readSync()).toThrow(ClosedError);
    sweep[Symbol.dispose]();
    expect(() => sweep.readSync()).toThrow(ClosedError);
  });
});
