// The event-loop netlink channel (native/rtnl-channel.cc) on sockets in
// this process's own namespace, where reading counters and dumps needs no
// privilege. The events of another namespace are the integration tests'
// (test/integration/netns/watch.test.ts).
import { afterEach, describe, expect, it } from 'vitest';
import { type NativeRtnlChannel, native } from '../../../src/native.js';
import {
  decodeLinkStats,
  decodeLinks,
  encodeGetLink,
  encodeGetStats,
  linkStatsFields,
  statsFromCounters,
} from '../../../src/netns/rtnl.js';
import { endsDump, framesOf } from '../../../src/netns/rtnl-events.js';

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const EAGAIN = 11;

interface Opened {
  chan: NativeRtnlChannel;
  fd: number;
  buf: Buffer;
  /** What onData was called with, in order: [len, errno]. */
  calls: [number, number][];
  onData: (len: number, errno: number) => void;
}

const open: Opened[] = [];

function channel(onData?: (o: Opened, len: number, errno: number) => void): Opened {
  const [fd] = native.socketsHere(AF_NETLINK, SOCK_RAW, 0, 1);
  const o = { fd, buf: Buffer.alloc(64 * 1024), calls: [] } as unknown as Opened;
  o.onData = (len, errno) => {
    o.calls.push([len, errno]);
    onData?.(o, len, errno);
  };
  o.chan = new native.RtnlChannel(fd!, o.buf, o.onData);
  open.push(o);
  return o;
}

function stamped(req: Buffer, seq: number): Buffer {
  req.writeUInt32LE(seq, 8);
  return req;
}

/** True once fd is no longer open in this process. */
function closed(fd: number): boolean {
  try {
    native.socketInfo(fd);
    return false;
  } catch (err) {
    return (err as { errno?: number }).errno === 9;
  }
}

afterEach(() => {
  for (const o of open.splice(0)) o.chan.close();
});

describe('RtnlChannel', () => {
  it('reads the counters of lo at once, as the TypeScript decoder reads the same reply', () => {
    const { chan, buf } = channel();
    const out = new Float64Array(25);
    expect(chan.stats(stamped(encodeGetStats(1), 1), out)).toBeGreaterThanOrEqual(23);
    const fromNative = statsFromCounters(out);
    chan.send(stamped(encodeGetStats(1), 2));
    const n = chan.read();
    expect(n).toBeGreaterThan(0);
    expect(framesOf(buf, n)[0]!.seq).toBe(2);
    const fromTs = decodeLinkStats(buf, n, 'x');
    // lo may carry traffic between the two reads: never less, and the same fields.
    expect(Object.keys(fromTs)).toEqual([...linkStatsFields]);
    for (const f of linkStatsFields) expect(fromTs[f]).toBeGreaterThanOrEqual(fromNative[f]);
    expect(chan.read()).toBe(-EAGAIN);
  });

  it('returns the errno of a link that does not exist, and skips a stale reply', () => {
    const { chan } = channel();
    chan.send(stamped(encodeGetStats(1), 5)); // never read: stale by the next request
    const out = new Float64Array(25);
    expect(chan.stats(stamped(encodeGetStats(0x7fff_fff0), 6), out)).toBe(-19);
    expect(chan.read()).toBe(-EAGAIN);
  });

  it('hands a dump to onData from the event loop, datagram by datagram, and stops when told', async () => {
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const parts: Buffer[] = [];
    const o = channel((self, len) => {
      parts.push(Buffer.from(self.buf.subarray(0, len)));
      const frames = framesOf(self.buf, len);
      if (frames.some(endsDump)) {
        self.chan.poll(false, false);
        done();
      }
    });
    o.chan.send(stamped(encodeGetLink(), 9));
    o.chan.poll(true, true);
    await finished;
    const all = Buffer.concat(parts);
    const frames = parts.flatMap((p) => framesOf(p, p.length));
    expect(frames.every((f) => f.seq === 9 && f.pid === o.chan.portId())).toBe(true);
    expect(decodeLinks(all).map((l) => l.name)).toContain('lo');
    expect(o.calls.every(([, errno]) => errno === 0)).toBe(true);
  });

  it('may be closed from inside onData: nothing more is read and the fd is closed', async () => {
    let fired!: () => void;
    const once = new Promise<void>((r) => {
      fired = r;
    });
    const o = channel((self) => {
      self.chan.close();
      fired();
    });
    // Two replies queued: onData is called for the first only.
    o.chan.send(stamped(encodeGetStats(1), 1));
    o.chan.send(stamped(encodeGetStats(1), 2));
    o.chan.poll(true, true);
    await once;
    await new Promise((r) => setTimeout(r, 20));
    expect(o.calls).toHaveLength(1);
    expect(closed(o.fd)).toBe(true);
    o.chan.close(); // twice is a no-op
  });

  it('joins groups, sets its receive buffer and knows its port before any send', () => {
    const { chan } = channel();
    expect(chan.portId()).toBeGreaterThan(0);
    chan.join(1); // RTNLGRP_LINK: no privilege needed to listen
    expect(chan.receiveBuffer(4096)).toBeGreaterThanOrEqual(4096);
    expect(() => chan.join(100_000)).toThrow(expect.objectContaining({ syscall: 'setsockopt' }));
  });

  it('a StatsSweep sends every request, then reads every reply, one result per member', () => {
    const chans = [channel(), channel(), channel()];
    const sweep = new native.StatsSweep(
      chans.map((c) => c.chan),
      [encodeGetStats(1), encodeGetStats(0x7fff_fff0), encodeGetStats(1)],
    );
    const out = new Float64Array(75);
    const results = new Int32Array(3);
    for (let round = 0; round < 3; round++) {
      sweep.read(out, results, new Uint8Array(3), 1000);
      expect(results[0]).toBeGreaterThanOrEqual(23);
      expect(results[1]).toBe(-19);
      expect(results[2]).toBe(results[0]);
      for (const c of chans) expect(c.chan.read()).toBe(-EAGAIN);
    }
    // A member left out sends nothing; a new request replaces the old.
    sweep.setRequest(1, encodeGetStats(1));
    sweep.read(out, results, Uint8Array.of(1, 0, 0), 1000);
    expect(results[0]).toBe(native.STATS_SKIPPED);
    expect(results[1]).toBeGreaterThanOrEqual(23);
    // A closed member's send fails with EBADF; the others go on.
    chans[2]!.chan.close();
    sweep.read(out, results, new Uint8Array(3), 1000);
    expect([results[0]! >= 23, results[1]! >= 23, results[2]]).toEqual([true, true, -9]);
  });

  it('a StatsSweep refuses what is not a channel, and arrays that do not match', () => {
    const { chan } = channel();
    const req = [encodeGetStats(1)];
    expect(() => new native.StatsSweep([{} as NativeRtnlChannel], req)).toThrow(
      expect.objectContaining({ errno: 22 }),
    );
    expect(() => new native.StatsSweep([chan], [])).toThrow(expect.objectContaining({ errno: 22 }));
    const sweep = new native.StatsSweep([chan], req);
    expect(() => sweep.read(new Float64Array(24), new Int32Array(1), new Uint8Array(1), 0)).toThrow(
      expect.objectContaining({ errno: 22 }),
    );
    expect(() => sweep.setRequest(1, req[0]!)).toThrow(expect.objectContaining({ errno: 22 }));
  });

  it('fails a send on a closed channel with EBADF', () => {
    const { chan } = channel();
    chan.close();
    expect(() => chan.send(stamped(encodeGetStats(1), 1))).toThrow(
      expect.objectContaining({ errno: 9, syscall: 'sendto' }),
    );
    expect(() => chan.stats(stamped(encodeGetStats(1), 1), new Float64Array(25))).toThrow(
      expect.objectContaining({ errno: 9 }),
    );
  });
});
