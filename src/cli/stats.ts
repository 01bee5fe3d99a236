// `podnet stats`: per-interface counters of containers set up by any process,
// once or redrawn with rates until SIGINT.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CAC } from 'cac';
import { InvalidArgumentError, isPodnetError } from '../errors.js';
import type { LinkStats } from '../netns/index.js';
import type { Attachment, Networking } from '../network/index.js';
import { type InterfaceRates, statsRates } from '../network/stats.js';
import type { ContainerStats } from '../network/types.js';
import { parseInterval } from './args.js';
import {
  addFlags,
  type FlagSpec,
  NETWORK_FLAGS,
  networkingFromFlags,
  readFlags,
  str,
} from './flags.js';
import { bytes, print, table } from './output.js';

const STATS_FLAGS: readonly FlagSpec[] = [
  { name: 'watch', help: 'Redraw with rates every interval until interrupted' },
  { name: 'interval', arg: 'ms', help: 'Milliseconds between redraws with --watch (default 1000)' },
  ...NETWORK_FLAGS,
];

/** One container's counters, as `podnet stats --json` prints them. */
export interface ContainerStatsReport extends ContainerStats {
  id: string;
  name: string;
}

/** One interface in a line of `podnet stats --watch --json`: its rates and counters. */
export interface InterfaceWatch extends InterfaceRates {
  stats: LinkStats;
}

/** One line of `podnet stats --watch --json`, printed every interval. */
export interface StatsTick {
  /** ISO time of the sample. */
  time: string;
  containers: { id: string; name: string; interfaces: InterfaceWatch[] }[];
}

const noSuchContainer = (e: unknown): boolean =>
  isPodnetError(e) && e.code === 'ERR_PODNET_NO_SUCH_CONTAINER';

/**
 * Loads IDS, or every container in the state dir when none are given. With
 * SKIPMISSING, containers torn down before they could be loaded are left out
 * (they were found by listing, not asked for by name).
 */
async function loadAll(
  net: Networking,
  ids: string[],
  skipMissing: boolean,
): Promise<Attachment[]> {
  const out: Attachment[] = [];
  try {
    for (const id of ids) {
      try {
        out.push(await net.load(id));
      } catch (e) {
        if (!skipMissing || !noSuchContainer(e)) throw e;
      }
    }
    return out;
  } catch (e) {
    for (const a of out) a.close();
    throw e;
  }
}

/**
 * The containers in the state dir that are set up. One still being set up by
 * another process may have no namespace yet, so it is left out until ready.
 */
async function listIds(net: Networking): Promise<string[]> {
  return (await net.list()).filter((s) => s.phase === 'ready').map((s) => s.id);
}

function formatStats(reports: ContainerStatsReport[]): string {
  return table(
    [
      'CONTAINER',
      'NAME',
      'IFACE',
      'RX BYTES',
      'RX PACKETS',
      'RX ERRORS',
      'RX DROPPED',
      'TX BYTES',
      'TX PACKETS',
      'TX ERRORS',
      'TX DROPPED',
    ],
    reports.flatMap((r) =>
      r.interfaces.map(({ name, stats: s }) => [
        r.id,
        r.name,
        name,
        bytes(s.rxBytes),
        s.rxPackets,
        s.rxErrors,
        s.rxDropped,
        bytes(s.txBytes),
        s.txPackets,
        s.txErrors,
        s.txDropped,
      ]),
    ),
  );
}

function formatTick(tick: StatsTick): string {
  const rate = (n: number): string => `${bytes(Math.round(n))}/s`;
  return table(
    ['CONTAINER', 'NAME', 'IFACE', 'RX/S', 'TX/S', 'RX PKT/S', 'TX PKT/S', 'RX TOTAL', 'TX TOTAL'],
    tick.containers.flatMap((c) =>
      c.interfaces.map((i) => [
        c.id,
        c.name,
        i.name,
        rate(i.rxBytesPerSec),
        rate(i.txBytesPerSec),
        i.rxPacketsPerSec.toFixed(1),
        i.txPacketsPerSec.toFixed(1),
        bytes(i.stats.rxBytes),
        bytes(i.stats.txBytes),
      ]),
    ),
  );
}

/** The previous sample of one watched container. */
interface Watched {
  att: Attachment;
  stats: ContainerStats;
  at: number;
}

/** Waits MS; false when SIGNAL aborts the wait (or already has). */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * Samples every INTERVALMS and prints each container's rates against its
 * previous sample, until SIGINT or SIGTERM, which end it normally (exit 0).
 * The state dir is listed on every tick: containers torn down meanwhile
 * disappear, and ones set up meanwhile (any, without IDS; named ones set up
 * again, with) appear from their second sample, their first being the baseline.
 */
async function watch(
  net: Networking,
  ids: string[],
  intervalMs: number,
  json: boolean,
): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const watched = new Map<string, Watched>();
  const baseline = async (att: Attachment): Promise<void> => {
    watched.set(att.id, { att, stats: await att.stats(), at: performance.now() });
  };
  // Clearing the screen only makes sense on a terminal; piped output gets
  // one table after another.
  const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
  try {
    const first = ids.length > 0 ? ids : await listIds(net);
    for (const att of await loadAll(net, first, ids.length === 0)) await baseline(att);
    while (await pause(intervalMs, stop.signal)) {
      const live = new Set(await listIds(net));
      const tick: StatsTick = { time: new Date().toISOString(), containers: [] };
      for (const [id, w] of watched) {
        if (!live.has(id)) {
          w.att.close();
          watched.delete(id);
          continue;
        }
        const stats = await w.att.stats();
        const at = performance.now();
        const rates = statsRates(w.stats, stats, (at - w.at) / 1000);
        tick.containers.push({
          id,
          name: w.att.state.name,
          interfaces: rates.map((r, i) => ({ ...r, stats: stats.interfaces[i]!.stats })),
        });
        Object.assign(w, { stats, at });
      }
      const appeared = (ids.length > 0 ? ids : [...live]).filter(
        (id) => live.has(id) && !watched.has(id),
      );
      for (const att of await loadAll(net, appeared, true)) await baseline(att);
      if (json) process.stdout.write(`${JSON.stringify(tick)}\n`);
      else process.stdout.write(`${clear}${formatTick(tick)}\n\n`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const w of watched.values()) w.att.close();
  }
}

/** Registers `stats` on CLI. */
export function registerStatsCommand(cli: CAC): void {
  addFlags(
    cli.command('stats [...ids]', 'Per-interface counters of containers (all without IDs)'),
    STATS_FLAGS,
  ).action(async (ids: string[]) => {
    const flags = readFlags(cli, STATS_FLAGS);
    const json = flags['json'] === true;
    const interval = str(flags, 'interval');
    const intervalMs = interval === undefined ? 1000 : parseInterval(interval);
    if (interval !== undefined && flags['watch'] !== true) {
      throw new InvalidArgumentError('--interval needs --watch');
    }
    const net = networkingFromFlags(flags);
    if (flags['watch'] === true) return watch(net, ids, intervalMs, json);
    const all = ids.length > 0 ? ids : await listIds(net);
    const atts = await loadAll(net, all, ids.length === 0);
    const reports: ContainerStatsReport[] = [];
    try {
      for (const att of atts) {
        reports.push({ id: att.id, name: att.state.name, ...(await att.stats()) });
      }
    } finally {
      for (const att of atts) att.close();
    }
    print(json, reports, () => formatStats(reports));
  });
}
