// The delay line's thread (native/delayline.cc), which needs no privileges:
// a line reads datagrams from one fd and sends them to another, so here
// its input and output are SOCK_SEQPACKET pairs instead of a tap and a
// packet socket. Delay, FIFO order under jitter, loss, the queue limit, the
// rate, parameters swapped in place, its counters, and its end.
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../../src/native.js';

// [delayNs, jitterNs, loss, rateBytes, limit]
const params = (
  o: { delayMs?: number; jitterMs?: number; loss?: number; rate?: number; limit?: number } = {},
): number[] => [
  (o.delayMs ?? 0) * 1e6,
  (o.jitterMs ?? 0) * 1e6,
  o.loss ?? 0,
  o.rate ?? 0,
  o.limit ?? 1000,
];

interface TestLine {
  id: number;
  /** Where the test writes frames, and where the line's output arrives. */
  feed: number;
  sink: number;
}

const open: number[] = [];
const lines: number[] = [];
afterEach(() => {
  for (const id of lines.splice(0)) native.delayLineClose(id);
  for (const fd of open.splice(0)) native.closeFd(fd);
});

function line(p: number[]): TestLine {
  const [feed, lineIn] = native.seqpacketPair();
  const [lineOut, sink] = native.seqpacketPair();
  open.push(feed!, sink!);
  const id = native.delayLineStart(lineIn!, lineOut!, p);
  lines.push(id);
  return { id, feed: feed!, sink: sink! };
}

const frame = (i: number, size = 64): Buffer => {
  const b = Buffer.alloc(size);
  b.writeUInt32LE(i);
  return b;
};

/** Frames from the sink until `timeoutMs` passes with none: [seq, ms since t0]. */
async function collect(sink: number, t0: bigint, timeoutMs: number): Promise<[number, number][]> {
  const got: [number, number][] = [];
  for (;;) {
    const msg = await native.recvFds(sink, timeoutMs).catch(() => null);
    if (!msg) return got;
    got.push([msg.data.readUInt32LE(0), Number(process.hrtime.bigint() - t0) / 1e6]);
  }
}

const stats = (id: number) => {
  const v = native.delayLineStats(id) ?? [];
  const at = (i: number): number => v[i] ?? -1;
  return {
    frames: at(0),
    delivered: at(1),
    lost: at(2),
    overflowed: at(3),
    failed: at(4),
    queued: at(5),
    errno: at(6),
  };
};

describe('the delay line', () => {
  it('holds each frame for its delay, and counts it', async () => {
    const l = line(params({ delayMs: 40 }));
    const t0 = process.hrtime.bigint();
    native.sendFds(l.feed, frame(7));
    const got = await collect(l.sink, t0, 300);
    expect(got.map(([s]) => s)).toEqual([7]);
    expect(got[0]![1]).toBeGreaterThanOrEqual(40);
    expect(got[0]![1]).toBeLessThan(140);
    expect(stats(l.id)).toEqual({
      frames: 1,
      delivered: 1,
      lost: 0,
      overflowed: 0,
      failed: 0,
      queued: 0,
      errno: 0,
    });
  });

  it('never reorders under jitter, and keeps each delay within delay +/- jitter', async () => {
    const l = line(params({ delayMs: 30, jitterMs: 20 }));
    const t0 = process.hrtime.bigint();
    const sent: number[] = [];
    for (let i = 0; i < 40; i++) {
      native.sendFds(l.feed, frame(i));
      sent.push(Number(process.hrtime.bigint() - t0) / 1e6);
      await new Promise((r) => setTimeout(r, 2));
    }
    const got = await collect(l.sink, t0, 300);
    expect(got.map(([s]) => s)).toEqual(sent.map((_, i) => i));
    const delays = got.map(([s, at]) => at - sent[s]!);
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(10 - 1);
    // The upper bound has room for this test's own event loop.
    expect(Math.max(...delays)).toBeLessThan(50 + 60);
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(5);
  });

  it('drops everything at loss 1 and nothing at loss 0, counting the losses', async () => {
    const l = line(params({ loss: 1 }));
    for (let i = 0; i < 50; i++) native.sendFds(l.feed, frame(i));
    expect(await collect(l.sink, process.hrtime.bigint(), 150)).toEqual([]);
    expect(stats(l.id)).toMatchObject({ frames: 50, lost: 50, delivered: 0 });
    expect(native.delayLineSet(l.id, params({ loss: 0 }))).toBe(true);
    for (let i = 0; i < 50; i++) native.sendFds(l.feed, frame(i));
    expect(await collect(l.sink, process.hrtime.bigint(), 150)).toHaveLength(50);
    expect(stats(l.id)).toMatchObject({ frames: 100, lost: 50, delivered: 50 });
  });

  it('drops about the share asked for', async () => {
    const l = line(params({ loss: 0.3 }));
    for (let i = 0; i < 1000; i++) native.sendFds(l.feed, frame(i));
    const got = await collect(l.sink, process.hrtime.bigint(), 200);
    expect(got.length).toBeGreaterThan(600);
    expect(got.length).toBeLessThan(800);
    expect(stats(l.id).lost).toBe(1000 - got.length);
  });

  it('queues at most `limit` frames; the rest overflow', async () => {
    const l = line(params({ delayMs: 100, limit: 10 }));
    for (let i = 0; i < 30; i++) native.sendFds(l.feed, frame(i));
    await new Promise((r) => setTimeout(r, 30));
    expect(stats(l.id)).toMatchObject({ frames: 30, queued: 10, overflowed: 20 });
    const got = await collect(l.sink, process.hrtime.bigint(), 250);
    expect(got.map(([s]) => s)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('spaces frames by their serialization time at the rate', async () => {
    // 1000-byte frames at 100 kB/s: 10 ms each.
    const l = line(params({ rate: 100_000 }));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) native.sendFds(l.feed, frame(i, 1000));
    const got = await collect(l.sink, t0, 300);
    expect(got).toHaveLength(20);
    expect(got[19]![1]).toBeGreaterThanOrEqual(200 - 1);
    expect(got[19]![1] - got[0]![1]).toBeGreaterThanOrEqual(190 - 1);
  });

  it('takes new parameters in place: frames already held keep their time, none is lost', async () => {
    const l = line(params({ delayMs: 80 }));
    const t0 = process.hrtime.bigint();
    native.sendFds(l.feed, frame(1));
    // The swap is for frames read after it: wait until the line holds the first.
    while (stats(l.id).queued < 1) await new Promise((r) => setTimeout(r, 1));
    native.delayLineSet(l.id, params({ delayMs: 10 }));
    native.sendFds(l.feed, frame(2));
    const got = await collect(l.sink, t0, 300);
    // FIFO: the second waits for the first, though its own delay is shorter.
    expect(got.map(([s]) => s)).toEqual([1, 2]);
    expect(got[0]![1]).toBeGreaterThanOrEqual(80);
  });

  it('reports the end of its input, and its final counters at close', async () => {
    const l = line(params({ delayMs: 200 }));
    native.sendFds(l.feed, frame(1));
    native.closeFd(l.feed);
    open.splice(open.indexOf(l.feed), 1);
    await new Promise((r) => setTimeout(r, 30));
    expect(stats(l.id)).toMatchObject({ frames: 1, queued: 1, errno: 32 }); // EPIPE
    lines.splice(lines.indexOf(l.id), 1);
    expect(native.delayLineClose(l.id)).toEqual([1, 0, 0, 0, 0, 1, 32]);
    expect(native.delayLineClose(l.id)).toBeUndefined();
    expect(native.delayLineStats(l.id)).toBeUndefined();
    expect(native.delayLineSet(l.id, params())).toBe(false);
    // Its output was closed with it.
    expect(await native.recvFds(l.sink, 100)).toBeNull();
  });

  it('refuses parameters out of range, closing the fds it was given', () => {
    for (const bad of [
      [1, 2, 3],
      [0, 0, 1.5, 0, 1000],
      [-1, 0, 0, 0, 1000],
      [0, 0, 0, 0, 0],
      [Number.NaN, 0, 0, 0, 1000],
      [1e300, 0, 0, 0, 1000],
      [0, 0, 0, 1e-300, 1000],
      [0, 0, 0, 0, 1e300],
    ]) {
      const [a, b] = native.seqpacketPair();
      const [c, d] = native.seqpacketPair();
      open.push(a!, d!);
      expect(() => native.delayLineStart(b!, c!, bad)).toThrow(
        expect.objectContaining({ errno: 22 }),
      );
      expect(() => native.socketInfo(b!)).toThrow();
    }
  });
});
