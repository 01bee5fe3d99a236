// The `stats --watch` loop on an injected clock and state: the first frame
// comes at once with counters only, rates from a container's second frame.
import { describe, expect, it } from 'vitest';
import {
  formatTick,
  type StatsTick,
  type WatchedContainer,
  type WatchSource,
  watchStats,
} from '../../../src/cli/stats.js';
import { linkStatsFields } from '../../../src/netns/index.js';
import type { ContainerStats } from '../../../src/network/types.js';

function sample(rxBytes: number, txBytes: number): ContainerStats {
  const stats = Object.fromEntries(linkStatsFields.map((f) => [f, 0])) as ContainerStats['total'];
  Object.assign(stats, { rxBytes, txBytes, rxPackets: rxBytes / 100, txPackets: txBytes / 100 });
  return { interfaces: [{ name: 'eth0', stats }], total: { ...stats } };
}

/**
 * A fake world: containers whose counters grow by RATE bytes/s, a clock
 * that advances one INTERVAL per pause, and a script of which containers
 * are ready at each frame.
 */
function world(frames: string[][], rate: Record<string, number>, intervalMs = 500) {
  let frame = 0;
  let clock = 1000;
  const opened: string[] = [];
  const closed: string[] = [];
  const source: WatchSource = {
    list: async () => frames[Math.min(frame, frames.length - 1)] ?? [],
    open: async (id, required) => {
      const ready = (frames[frame] ?? []).includes(id);
      if (!ready && required) throw new Error(`no container '${id}'`);
      if (!ready) return undefined;
      opened.push(id);
      const c: WatchedContainer = {
        name: `name-${id.slice(0, 4)}`,
        stats: async () => sample(((rate[id] ?? 0) * clock) / 1000, 0),
        close: () => closed.push(id),
      };
      return c;
    },
    now: () => clock,
    date: () => new Date(Date.UTC(2026, 0, 1) + clock),
    pause: async () => {
      frame++;
      clock += intervalMs;
      return frame < frames.length;
    },
  };
  return { source, opened, closed };
}

const LONG = 'a'.repeat(64);

describe('watchStats', () => {
  it('emits the first frame before any wait, with counters and no rates', async () => {
    const w = world([[LONG]], { [LONG]: 2000 });
    const ticks: StatsTick[] = [];
    await watchStats(w.source, [], (t) => ticks.push(t));
    expect(ticks).toHaveLength(1);
    const [eth0] = ticks[0]?.containers[0]?.interfaces ?? [];
    expect(eth0?.stats.rxBytes).toBe(2000);
    expect(eth0?.rxBytesPerSec).toBeUndefined();
    expect(ticks[0]?.containers[0]?.id).toBe(LONG);
    expect(w.closed).toEqual([LONG]);
  });

  it('gives rates from the second frame, against the injected clock', async () => {
    const w = world([['c1'], ['c1'], ['c1']], { c1: 3000 });
    const ticks: StatsTick[] = [];
    await watchStats(w.source, [], (t) => ticks.push(t));
    expect(ticks.map((t) => t.containers[0]?.interfaces[0]?.rxBytesPerSec)).toEqual([
      undefined,
      3000,
      3000,
    ]);
    expect(ticks[1]?.containers[0]?.interfaces[0]?.rxPacketsPerSec).toBe(30);
    expect(ticks.map((t) => t.time)).toEqual([
      '2026-01-01T00:00:01.000Z',
      '2026-01-01T00:00:01.500Z',
      '2026-01-01T00:00:02.000Z',
    ]);
  });

  it('shows a container set up meanwhile at once, and drops and closes one torn down', async () => {
    const w = world([['c1'], ['c1', 'c2'], ['c2']], { c1: 1000, c2: 500 });
    const ticks: StatsTick[] = [];
    await watchStats(w.source, [], (t) => ticks.push(t));
    const seen = ticks.map((t) =>
      t.containers.map((c) => [c.id, c.interfaces[0]?.rxBytesPerSec ?? null]),
    );
    expect(seen).toEqual([
      [['c1', null]],
      [
        ['c1', 1000],
        ['c2', null],
      ],
      [['c2', 500]],
    ]);
    expect(w.closed).toEqual(['c1', 'c2']);
    expect(w.opened).toEqual(['c1', 'c2']);
  });

  it('requires IDs named on the command line at the start, and closes what it opened', async () => {
    const w = world([['c1']], { c1: 1 });
    await expect(watchStats(w.source, ['c1', 'gone'], () => undefined)).rejects.toThrow(
      "no container 'gone'",
    );
    expect(w.closed).toEqual(['c1']);
  });

  it('watches only the named IDs, and picks one up again when it comes back', async () => {
    const w = world([['c1', 'c2'], ['c2'], ['c1', 'c2']], { c1: 1, c2: 1 });
    const ticks: StatsTick[] = [];
    await watchStats(w.source, ['c1'], (t) => ticks.push(t));
    expect(ticks.map((t) => t.containers.map((c) => c.id))).toEqual([['c1'], [], ['c1']]);
  });
});

describe('formatTick', () => {
  it('shortens IDs to 12 characters and shows - for rates not known yet', async () => {
    const w = world([[LONG], [LONG]], { [LONG]: 2048 });
    const ticks: StatsTick[] = [];
    await watchStats(w.source, [], (t) => ticks.push(t));
    const [first, second] = ticks.map((t) => formatTick(t).split('\n')[1]);
    expect(first).toMatch(/^a{12} +name-aaaa +eth0 +- +- +- +- +2\.0 KiB +0 B$/);
    expect(second).toMatch(
      /^a{12} +name-aaaa +eth0 +2\.0 KiB\/s +0 B\/s +20\.5 +0\.0 +3\.0 KiB +0 B$/,
    );
    // JSON keeps the whole ID.
    expect(JSON.parse(JSON.stringify(ticks[0])).containers[0].id).toBe(LONG);
  });
});

describe('published-port traffic in the watch', () => {
  it("carries lo (marked) and the forwarder's per-port counters into each frame and its table", async () => {
    const lo = sample(700, 700).interfaces[0]!.stats;
    const stats: ContainerStats = {
      ...sample(10, 20),
      interfaces: [...sample(10, 20).interfaces, { name: 'lo', loopback: true, stats: lo }],
      publishedVia: 'forwarder',
      ports: [
        {
          hostIP: '127.0.0.1',
          hostPort: 18080,
          containerPort: 80,
          protocol: 'tcp',
          connections: 2,
          active: 0,
          rxBytes: 100,
          txBytes: 250,
          rxDatagrams: 0,
          txDatagrams: 0,
        },
      ],
    };
    const source: WatchSource = {
      list: async () => ['c1'],
      open: async () => ({ name: 'web', stats: async () => stats, close: () => undefined }),
      now: () => 0,
      date: () => new Date(0),
      pause: async () => false, // one frame
    };
    const ticks: StatsTick[] = [];
    await watchStats(source, [], (t) => ticks.push(t));
    const [c] = ticks[0]!.containers;
    expect(c!.publishedVia).toBe('forwarder');
    expect(c!.ports).toEqual(stats.ports);
    expect(c!.interfaces.map((i) => [i.name, i.loopback])).toEqual([
      ['eth0', undefined],
      ['lo', true],
    ]);
    const text = formatTick(ticks[0]!);
    // lo carries the forwarder's dial: marked in the PUBLISHED column; eth0 not.
    expect(text).toMatch(/^c1 +web +lo \(loopback\) .* \*$/m);
    expect(text).toMatch(/^c1 +web +eth0 .*B$/m);
    expect(text).toMatch(/^c1 +web +127\.0\.0\.1:18080->80\/tcp +2 +0 +100 B +250 B +- +-$/m);
  });
});
