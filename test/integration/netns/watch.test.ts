// ns.watch() against a real kernel: changes made by ip(8) inside another
// namespace arrive as typed events, in order; listExisting lists first; an
// overflowed socket resyncs; every way of ending it closes the socket.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type NetlinkEvent, type NetlinkWatch, NetworkNamespace } from '../../../src/index.js';
import { inNetns, isRoot, type NetnsDir, tempNetnsDir, uniq } from '../../helpers/host.js';
import { eventLabel } from '../../helpers/netlink-events.js';

const label = (ev: NetlinkEvent): string => eventLabel(ev);

/** Events of W up to and including the first for which `last` is true. */
async function until(
  w: NetlinkWatch,
  last: (ev: NetlinkEvent) => boolean,
): Promise<NetlinkEvent[]> {
  const out: NetlinkEvent[] = [];
  for (;;) {
    const r = await w.next();
    if (r.done) throw new Error(`the watch ended after ${out.map(label).join(', ')}`);
    out.push(r.value);
    if (last(r.value)) return out;
  }
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

describe.skipIf(!isRoot)('NetworkNamespace.watch', () => {
  let tmp: NetnsDir;
  let ns: NetworkNamespace;
  const watches: NetlinkWatch[] = [];
  // Every watch of a test ends within 20 s, whatever happens to the test.
  const watch = (opts: Parameters<NetworkNamespace['watch']>[0] = {}): NetlinkWatch => {
    const w = ns.watch({ signal: AbortSignal.timeout(20_000), ...opts });
    watches.push(w);
    return w;
  };
  const ip = (...args: string[]): Promise<string> => inNetns(ns.path, ['ip', ...args]);

  beforeEach(async () => {
    tmp = tempNetnsDir();
    ns = await NetworkNamespace.create({ dir: tmp.dir, name: `w-${uniq()}` });
  });
  afterEach(async () => {
    for (const w of watches.splice(0)) w.close();
    await ns.remove();
    await tmp.cleanup();
  });

  it('sees a link and an address made, brought up and deleted in the namespace, in order', async () => {
    const a = `wa${uniq(3)}`;
    const b = `wb${uniq(3)}`;
    const w = watch({ links: true, addresses: true });
    await w.ready;
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b);
    await ip('link', 'set', a, 'up');
    await ip('addr', 'add', '10.77.0.1/24', 'dev', a);
    await ip('addr', 'del', '10.77.0.1/24', 'dev', a);
    await ip('link', 'del', a);
    const events = await until(w, (ev) => ev.type === 'link-removed' && ev.link.name === a);
    const labels = events.map(label).filter((l) => l.includes(a) || l.includes('10.77.0.1'));
    const wanted = [
      `link-added ${a}`,
      `link-changed ${a} up`,
      'address-added 10.77.0.1/24',
      'address-removed 10.77.0.1/24',
      `link-removed ${a}`,
    ];
    const at = wanted.map((l) => labels.indexOf(l));
    expect(
      at.every((i) => i >= 0),
      labels.join(', '),
    ).toBe(true);
    expect([...at].sort((x, y) => x - y)).toEqual(at);
    // Only the kinds asked for: no route or neighbour events.
    expect(events.every((ev) => ev.type.startsWith('link') || ev.type.startsWith('address'))).toBe(
      true,
    );
    const added = events.find((ev) => ev.type === 'link-added' && ev.link.name === a);
    expect(added).toMatchObject({ link: { kind: 'veth', mtu: 1500, up: false } });
  });

  it('lists what exists first, ending with synced, then the live events', async () => {
    const a = `la${uniq(3)}`;
    await ns.setLinkUp('lo');
    await ip('link', 'add', a, 'type', 'veth', 'peer', 'name', `lb${uniq(3)}`);
    await ip('link', 'set', a, 'up');
    await ip('addr', 'add', '10.78.0.1/24', 'dev', a);
    await ip('route', 'add', '10.79.0.0/16', 'via', '10.78.0.254');
    await ip('neigh', 'add', '10.78.0.7', 'lladdr', '02:00:00:00:00:07', 'dev', a);
    const w = watch({ listExisting: true });
    const listed = await until(w, (ev) => ev.type === 'synced');
    expect(listed.at(-1)).toEqual({ type: 'synced' });
    const body = listed.slice(0, -1);
    expect(
      body.every((ev) => ev.type.endsWith('-added')),
      body.map(label).join(),
    ).toBe(true);

    const ipLinks = JSON.parse(await ip('-j', 'link', 'show')) as { ifname: string }[];
    const links = body.flatMap((ev) => (ev.type === 'link-added' ? [ev.link.name] : []));
    expect(links.sort()).toEqual(ipLinks.map((l) => l.ifname).sort());
    const ipAddrs = (
      JSON.parse(await ip('-j', 'addr', 'show')) as { addr_info: { local: string }[] }[]
    ).flatMap((l) => l.addr_info.map((x) => x.local));
    const addrs = body.flatMap((ev) => (ev.type === 'address-added' ? [ev.address.address] : []));
    expect(addrs.sort()).toEqual(ipAddrs.sort());
    const routes = body.flatMap((ev) => (ev.type === 'route-added' ? [ev.route] : []));
    expect(routes.find((r) => r.destination === '10.79.0.0')).toMatchObject({
      prefixLength: 16,
      gateway: '10.78.0.254',
      table: 254,
    });
    const ipRoutes4 = JSON.parse(
      await ip('-j', '-4', 'route', 'show', 'table', 'all'),
    ) as unknown[];
    expect(routes.filter((r) => r.family === 4)).toHaveLength(ipRoutes4.length);
    const neighbor = body.find((ev) => ev.type === 'neighbor-added');
    expect(neighbor).toMatchObject({
      neighbor: { address: '10.78.0.7', mac: '02:00:00:00:00:07' },
    });

    // Then what changes.
    await ip('addr', 'add', '10.78.0.2/24', 'dev', a);
    const live = await until(w, (ev) => ev.type === 'address-added');
    expect(label(live.at(-1)!)).toBe('address-added 10.78.0.2/24');
  });

  it('resyncs after its socket overflowed: a resync event, then the state as it is now', async () => {
    const w = watch({ links: true, receiveBufferBytes: 1 });
    await w.ready;
    // 40 veth pairs made and 20 of them deleted while this process's event
    // loop is blocked (spawnSync): nothing reads the socket, whose buffer
    // holds one datagram, so it overflows.
    const tag = uniq(2);
    const lines: string[] = [];
    for (let i = 0; i < 40; i++)
      lines.push(`link add o${tag}a${i} type veth peer name o${tag}b${i}`);
    for (let i = 0; i < 20; i++) lines.push(`link del o${tag}a${i}`);
    const r = spawnSync('nsenter', [`--net=${ns.path}`, 'ip', '-batch', '-'], {
      input: `${lines.join('\n')}\n`,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);

    const events = await until(w, (ev) => ev.type === 'resync');
    // What was read before the overflow: at most what the tiny buffer held.
    expect(events.length).toBeLessThan(5);
    const listing = await until(w, (ev) => ev.type === 'synced');
    const names = listing.flatMap((ev) => (ev.type === 'link-added' ? [ev.link.name] : []));
    const ipLinks = JSON.parse(await ip('-j', 'link', 'show')) as { ifname: string }[];
    expect(ipLinks).toHaveLength(41); // lo and the 20 pairs left
    expect(names.sort()).toEqual(ipLinks.map((l) => l.ifname).sort());
    expect(listing.slice(0, -1).every((ev) => ev.type === 'link-added')).toBe(true);

    // And it goes on watching: the deletion arrives as events, or (its
    // burst may overflow the one-datagram buffer again) as a listing
    // without the link.
    const gone = `o${tag}a39`;
    await ip('link', 'del', gone);
    let relisted: string[] | undefined;
    const more = await until(w, (ev) => {
      if (ev.type === 'resync') relisted = [];
      else if (ev.type === 'link-added') relisted?.push(ev.link.name);
      else if (ev.type === 'synced') return relisted !== undefined && !relisted.includes(gone);
      return ev.type === 'link-removed' && ev.link.name === gone;
    });
    expect(more.length).toBeGreaterThan(0);
    if (relisted) expect(relisted).toHaveLength(39);
  });

  it('closes its socket on break, on abort and with the namespace handle', async () => {
    const before = openFds();
    const w1 = watch({ links: true });
    await w1.ready;
    expect(openFds()).toBe(before + 1);
    await ip('link', 'add', `b${uniq(3)}`, 'type', 'veth', 'peer', 'name', `c${uniq(3)}`);
    for await (const ev of w1) {
      expect(ev.type).toBe('link-added');
      break;
    }
    expect(w1.closed).toBe(true);
    expect(openFds()).toBe(before);
    expect(await w1.next()).toEqual({ value: undefined, done: true });

    const ac = new AbortController();
    const w2 = watch({ links: true, signal: ac.signal });
    await w2.ready;
    const pending = w2.next();
    ac.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_PODNET_ABORTED' });
    expect(openFds()).toBe(before);
    expect(await w2.next()).toEqual({ value: undefined, done: true });

    const aborted = ns.watch({ signal: AbortSignal.abort() });
    await expect(aborted.next()).rejects.toMatchObject({ code: 'ERR_PODNET_ABORTED' });
    await expect(aborted.ready).rejects.toMatchObject({ code: 'ERR_PODNET_ABORTED' });

    const w3 = watch();
    await w3.ready;
    const waiting = w3.next();
    ns.close();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(openFds()).toBeLessThan(before); // and the namespace's own fd
  });
});
