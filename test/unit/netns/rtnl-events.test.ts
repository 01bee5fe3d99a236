import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPodnetError, NetlinkDecodeError, PodnetSystemError } from '../../../src/errors.js';
import { decodeLinkStats, encodeGetStats, linkStatsFields } from '../../../src/netns/rtnl.js';
import {
  decodeNeighbor,
  decodeRoute,
  encodeDump,
  endsDump,
  errorOf,
  eventOf,
  framesOf,
  kindOf,
  type NetlinkEvent,
} from '../../../src/netns/rtnl-events.js';
import { fixture } from '../../helpers/fixtures.js';
import { linkStatsFromIp } from '../../helpers/ip-stats.js';
import { eventLabel } from '../../helpers/netlink-events.js';

// Datagrams captured from a real kernel by fixtures/netlink/capture-events.mjs.
const captured = JSON.parse(readFileSync(fixture('netlink/events.json'), 'utf8')) as {
  port: number;
  events: { step: string; datagrams: string[] }[];
  dumps: Record<'routes' | 'neighbors', { seq: number; datagrams: string[] }>;
  getstatsLo: string;
  getstatsEnodev: string;
  ipStatsLo: { rx: Record<string, number>; tx: Record<string, number> };
};
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

/** Every event of a list of datagrams, as a watch would type them. */
function eventsOf(datagrams: string[], listed = false): NetlinkEvent[] {
  const out: NetlinkEvent[] = [];
  for (const d of datagrams) {
    const b = hex(d);
    for (const f of framesOf(b, b.length)) {
      const ev = endsDump(f) ? undefined : eventOf(b, f, listed);
      if (ev) out.push(ev);
    }
  }
  return out;
}

const label = (ev: NetlinkEvent): string => eventLabel(ev, { table: true });

const stepEvents = (step: string): NetlinkEvent[] =>
  eventsOf(captured.events.find((e) => e.step.startsWith(step))!.datagrams);

describe('the events of a watch, from captured datagrams', () => {
  it('types a link made, brought up and deleted, telling added from changed by ifi_change', () => {
    expect(stepEvents('ip link add').map(label)).toEqual(['link-added v1', 'link-added v0']);
    const up = stepEvents('ip link set v0 up').map(label);
    expect(up).toEqual(['link-changed v0 up']);
    const removed = stepEvents('ip link del').filter((e) => e.type === 'link-removed');
    // Brought down first (link-changed), then removed.
    expect(removed.map(label)).toEqual(['link-removed v0', 'link-removed v1']);
    const [ev] = stepEvents('ip link add');
    if (ev?.type !== 'link-added') throw new Error('expected link-added');
    expect(ev.link).toMatchObject({ kind: 'veth', mtu: 1500 });
    expect(ev.link.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  });

  it('types addresses and the routes the kernel adds with them', () => {
    const v4 = stepEvents('ip addr add 10.1.2.3/24').map(label);
    expect(v4).toContain('address-added 10.1.2.3/24');
    expect(v4).toContain('route-added 10.1.2.0/24 table 254');
    expect(v4).toContain('route-added 10.1.2.3/32 table 255');
    expect(stepEvents('ip -6 addr add').map(label)).toContain('address-added fd00:1::3/64');
    expect(stepEvents('ip addr del').map(label)).toContain('address-removed 10.1.2.3/24');
  });

  it('decodes a route through a gateway with its metric, and its removal', () => {
    const [add] = stepEvents('ip route add');
    expect(add).toEqual({
      type: 'route-added',
      route: {
        family: 4,
        destination: '10.9.0.0',
        prefixLength: 16,
        gateway: '10.1.2.1',
        index: expect.any(Number),
        table: 254,
        protocol: 3, // RTPROT_BOOT: what ip(8) sets
        scope: 0,
        type: 1,
        priority: 7,
      },
    });
    expect(stepEvents('ip route del').map(label)).toEqual(['route-removed 10.9.0.0/16 table 254']);
  });

  it('decodes a neighbour with its MAC and state, and its removal', () => {
    const [add] = stepEvents('ip neigh add');
    expect(add).toEqual({
      type: 'neighbor-added',
      neighbor: {
        family: 4,
        index: expect.any(Number),
        address: '10.1.2.7',
        mac: '02:00:00:00:00:07',
        state: 0x80, // NUD_PERMANENT
        flags: 0,
      },
    });
    expect(stepEvents('ip neigh del').map(label)).toContain('neighbor-removed 10.1.2.7');
  });

  it('lists the route and neighbour dumps as added, ending with NLMSG_DONE', () => {
    const routes = eventsOf(captured.dumps.routes.datagrams, true).map(label);
    expect(routes).toContain('route-added 10.9.0.0/16 table 254');
    expect(routes).toContain('route-added 10.1.2.0/24 table 254');
    expect(routes.every((l) => l.startsWith('route-added'))).toBe(true);
    // With the multicast entries IPv6 made for itself (ff02::16).
    const neighbors = eventsOf(captured.dumps.neighbors.datagrams, true).map(label);
    expect(neighbors).toContain('neighbor-added 10.1.2.7');
    expect(neighbors.every((l) => l.startsWith('neighbor-added'))).toBe(true);
    for (const kind of ['routes', 'neighbors'] as const) {
      const last = hex(captured.dumps[kind].datagrams.at(-1)!);
      const frames = framesOf(last, last.length);
      const done = frames.at(-1)!;
      expect(endsDump(done)).toBe(true);
      expect(errorOf(last, done)).toBe(0);
      expect(done).toMatchObject({ seq: captured.dumps[kind].seq, pid: captured.port });
    }
  });

  it('names the kind of each change message, and none for others', () => {
    expect([16, 17, 20, 21, 24, 25, 28, 29, 3, 2, 92].map(kindOf)).toEqual([
      'links',
      'links',
      'addresses',
      'addresses',
      'routes',
      'routes',
      'neighbors',
      'neighbors',
      undefined,
      undefined,
      undefined,
    ]);
  });
});

describe('encodeDump and encodeGetStats', () => {
  it('builds dump requests with the sequence number in', () => {
    const r = encodeDump('routes', 42);
    expect([r.length, r.readUInt16LE(4), r.readUInt16LE(6), r.readUInt32LE(8)]).toEqual([
      28, 26, 0x301, 42,
    ]);
    const n = encodeDump('neighbors', 7);
    expect([n.length, n.readUInt16LE(4), n.readUInt32LE(8)]).toEqual([28, 30, 7]);
    expect(encodeDump('links', 1).readUInt16LE(4)).toBe(18);
    expect(encodeDump('addresses', 1).readUInt16LE(4)).toBe(22);
  });

  it('asks for IFLA_STATS_LINK_64 of one index', () => {
    const b = encodeGetStats(7);
    expect(b.length).toBe(28);
    expect(b.readUInt16LE(4)).toBe(94); // RTM_GETSTATS
    expect(b.readUInt16LE(6)).toBe(1); // NLM_F_REQUEST, no dump
    expect(b.readUInt32LE(20)).toBe(7);
    expect(b.readUInt32LE(24)).toBe(1); // IFLA_STATS_FILTER_BIT(IFLA_STATS_LINK_64)
  });
});

describe('decodeLinkStats on RTM_GETSTATS replies', () => {
  it('agrees with ip -s -s -j link on every counter', () => {
    const b = hex(captured.getstatsLo);
    const s = decodeLinkStats(b, b.length, 'x');
    expect(s.rxPackets).toBeGreaterThan(0);
    const ip = linkStatsFromIp(captured.ipStatsLo);
    for (const field of linkStatsFields) expect([field, s[field]]).toEqual([field, ip[field]]);
    expect(decodeLinkStats(b, b.length, 'x', true).rxBytes).toBe(
      BigInt(captured.ipStatsLo.rx['bytes']!),
    );
  });

  it('throws the kernel errno of an unknown index', () => {
    const b = hex(captured.getstatsEnodev);
    let err: unknown;
    try {
      decodeLinkStats(b, b.length, 'reading x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({ code: 'ENODEV', errno: -19 });
  });
});

describe('the event codec under hostile input', () => {
  const all = [
    ...captured.events.flatMap((e) => e.datagrams),
    ...captured.dumps.routes.datagrams,
    ...captured.dumps.neighbors.datagrams,
    captured.getstatsLo,
  ].map(hex);

  /** 'ok' or 'error' (a PodnetError); anything else thrown fails the test. */
  function verdict(b: Buffer): 'ok' | 'error' {
    try {
      for (const f of framesOf(b, b.length)) {
        if (endsDump(f)) errorOf(b, f);
        else eventOf(b, f, false);
      }
      return 'ok';
    } catch (err) {
      if (!isPodnetError(err)) throw err;
      return 'error';
    }
  }

  it('refuses every truncation of every captured datagram cleanly', () => {
    for (const d of all) {
      for (let n = 1; n < d.length; n++) verdict(Buffer.from(d.subarray(0, n)));
    }
    // A cut inside the header of the first message is always an error.
    expect(verdict(all[0]!.subarray(0, 15))).toBe('error');
  });

  it('never throws anything but a PodnetError on random corruption', () => {
    fc.assert(
      fc.property(
        fc.nat(all.length - 1),
        fc.array(fc.tuple(fc.nat(2000), fc.integer({ min: 0, max: 255 })), { maxLength: 10 }),
        (which, edits) => {
          const b = Buffer.from(all[which]!);
          for (const [at, v] of edits) b[at % b.length] = v;
          verdict(b);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('rejects an address of the wrong size for its family', () => {
    const [add] = captured.events.find((e) => e.step.startsWith('ip route add'))!.datagrams;
    const b = hex(add!);
    // RTA_DST (type 1, 4 bytes) is the first attribute after rtmsg: say it is 5 bytes long.
    const f = framesOf(b, b.length)[0]!;
    const at = f.start + 12;
    expect(b.readUInt16LE(at + 2)).toBe(15); // RTA_TABLE comes first; find RTA_DST
    let off = at;
    while (b.readUInt16LE(off + 2) !== 1) off += (b.readUInt16LE(off) + 3) & ~3;
    b.writeUInt16LE(5, off);
    expect(() => decodeRoute(b, f)).toThrow(NetlinkDecodeError);
    expect(() => decodeNeighbor(b.subarray(0, f.start + 4), { ...f, end: f.start + 4 })).toThrow(
      NetlinkDecodeError,
    );
  });
});
