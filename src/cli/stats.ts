// `podnet stats`: per-interface counters of containers set up by any process,
// once (a table, JSON or OpenMetrics) or redrawn until SIGINT on the watch
// loop that Attachment.watchStats runs too: the first frame at once with
// counters, then rates against the previous frame. lo is listed (flagged)
// when it carries published-port traffic (a forwarder dials the container's
// own address from inside; pasta splices loopback clients), and the
// forwarder's per-port counters follow the interfaces.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { isPodnetError } from '../errors.js';
import { type ContainerNetworkStats, formatOpenMetrics } from '../metrics/openmetrics.js';
import type { Attachment, Networking } from '../network/index.js';
import { type InterfaceWatch, type WatchClock, watchFrames } from '../network/stats.js';
import type {
  ContainerStats,
  PublishedPortStats,
  PublishedVia,
  StatsOptions,
} from '../network/types.js';
import { parseInterval } from './args.js';
import { networkingFromFlags, reportSkipped } from './context.js';
import { UsageError } from './errors.js';
import { type FlagValues, str } from './flags.js';
import { bytes, print, shortId, table } from './output.js';

/** One container's counters, as `podnet stats --json` prints them. */
export type ContainerStatsReport = ContainerNetworkStats;

export type { InterfaceWatch };

/** One frame of `podnet stats --watch` (a line of JSON with --json). */
export interface StatsTick {
  /** ISO time of the sample. */
  time: string;
  containers: {
    id: string;
    name: string;
    interfaces: InterfaceWatch[];
    publishedVia?: PublishedVia;
    ports?: PublishedPortStats[];
  }[];
}

/** What `podnet stats` asks of each container: lo too when it carries the published ports. */
const STATS_OPTIONS: StatsOptions = { loopback: 'published' };

/** A container being watched: what the loop needs of an Attachment. */
export interface WatchedContainer {
  name: string;
  stats(): Promise<ContainerStats>;
  close(): void;
}

/**
 * What the watch reads from the world, and its clock; injected, so tests
 * run it on a fake clock.
 */
export interface WatchSource extends WatchClock {
  /** IDs of the containers that are ready now. */
  list(): Promise<string[]>;
  /**
   * Opens container ID; undefined when it is gone, unless REQUIRED (an ID
   * given on the command line, at the start), when that is an error.
   */
  open(id: string, required: boolean): Promise<WatchedContainer | undefined>;
}

/**
 * `stats --watch` over the watch loop (watchFrames): emits a frame at once
 * (counters only), then one per interval with each container's rates
 * against its previous sample. Every frame lists the ready containers
 * again: ones torn down meanwhile disappear, and ones set up meanwhile
 * (any, without IDS; named ones set up again, with) appear with counters,
 * then rates from their second frame. Closes every container it opened,
 * however it ends.
 */
export async function watchStats(
  source: WatchSource,
  ids: readonly string[],
  emit: (tick: StatsTick) => void,
): Promise<void> {
  const watched = new Map<string, WatchedContainer>();
  let first = true;
  const sample = async (): Promise<Map<string, ContainerStats>> => {
    const live = new Set(await source.list());
    for (const [id, c] of watched) {
      if (!live.has(id)) {
        c.close();
        watched.delete(id);
      }
    }
    // At the start, IDs named on the command line must exist (whatever
    // their phase); later they come back only when ready.
    const named = first && ids.length > 0;
    const wanted = ids.length === 0 ? [...live] : named ? ids : ids.filter((id) => live.has(id));
    for (const id of wanted) {
      if (watched.has(id)) continue;
      const c = await source.open(id, named);
      if (c !== undefined) watched.set(id, c);
    }
    first = false;
    const samples = new Map<string, ContainerStats>();
    for (const [id, c] of watched) samples.set(id, await c.stats());
    return samples;
  };
  try {
    for await (const frame of watchFrames(sample, source)) {
      emit({
        time: frame.time.toISOString(),
        containers: [...frame.containers].map(([id, c]) => ({
          id,
          name: watched.get(id)?.name ?? id,
          interfaces: c.interfaces,
          ...(c.publishedVia === undefined ? {} : { publishedVia: c.publishedVia }),
          ...(c.ports === undefined ? {} : { ports: c.ports }),
        })),
      });
    }
  } finally {
    for (const c of watched.values()) c.close();
  }
}

const noSuchContainer = (e: unknown): boolean =>
  isPodnetError(e) && e.code === 'ERR_PODNET_NO_SUCH_CONTAINER';

/**
 * The ready containers in the state dir. One still being set up by another
 * process may have no namespace yet, so it is left out until ready. A state
 * file that does not load is reported once per path (an error with --strict).
 */
async function readyIds(
  net: Networking,
  flags: FlagValues,
  warned: Set<string>,
): Promise<string[]> {
  const { states, bad } = await net.store.list();
  const fresh = bad.filter((e) => !warned.has(e.path));
  for (const e of fresh) warned.add(e.path);
  reportSkipped(
    fresh.map((error) => ({ file: error.path, error })),
    flags,
  );
  return states.filter((s) => s.phase === 'ready').map((s) => s.id);
}

/** Loads ID, or undefined when it was torn down meanwhile and may be missing. */
async function load(
  net: Networking,
  id: string,
  required: boolean,
): Promise<Attachment | undefined> {
  try {
    return await net.load(id);
  } catch (e) {
    if (required || !noSuchContainer(e)) throw e;
    return undefined;
  }
}

/** The interface column: lo is marked as such. */
function ifaceLabel(name: string, loopback: boolean): string {
  return loopback ? `${name} (loopback)` : name;
}

/**
 * The last column: `*` on the interface whose counters carry the published
 * ports' traffic (lo too when the forwarder publishes them: its dial
 * crosses lo).
 */
function publishedMark(name: string, loopback: boolean, via: PublishedVia | undefined): string {
  return via === name || (via === 'forwarder' && loopback) ? '*' : '';
}

/** The forwarder's per-port counters, a table after the interfaces' (nothing without any). */
function formatPorts(
  containers: readonly { id: string; name: string; ports?: PublishedPortStats[] }[],
): string {
  const rows = containers.flatMap((c) =>
    (c.ports ?? []).map((p) => [
      shortId(c.id),
      c.name,
      `${p.hostIP}:${p.hostPort}->${p.containerPort}/${p.protocol}`,
      p.protocol === 'tcp' ? p.connections : '-',
      p.protocol === 'tcp' ? p.active : '-',
      bytes(p.rxBytes),
      bytes(p.txBytes),
      p.protocol === 'udp' ? p.rxDatagrams : '-',
      p.protocol === 'udp' ? p.txDatagrams : '-',
    ]),
  );
  if (rows.length === 0) return '';
  const header = ['CONTAINER', 'NAME', 'FORWARDED PORT', 'CONNS', 'ACTIVE', 'RX BYTES'];
  return `\n\n${table([...header, 'TX BYTES', 'RX DGRAMS', 'TX DGRAMS'], rows)}`;
}

function formatStats(reports: ContainerStatsReport[]): string {
  return `${table(
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
      'PUBLISHED',
    ],
    reports.flatMap((r) =>
      r.interfaces.map(({ name, loopback, stats: s }) => [
        shortId(r.id),
        r.name,
        ifaceLabel(name, loopback === true),
        bytes(s.rxBytes),
        s.rxPackets,
        s.rxErrors,
        s.rxDropped,
        bytes(s.txBytes),
        s.txPackets,
        s.txErrors,
        s.txDropped,
        publishedMark(name, loopback === true, r.publishedVia),
      ]),
    ),
  )}${formatPorts(reports)}`;
}

/** A frame as a table; rates are `-` until a container's second frame. */
export function formatTick(tick: StatsTick): string {
  const rate = (n: number | undefined): string =>
    n === undefined ? '-' : `${bytes(Math.round(n))}/s`;
  const pps = (n: number | undefined): string => (n === undefined ? '-' : n.toFixed(1));
  return `${table(
    [
      ...['CONTAINER', 'NAME', 'IFACE', 'RX/S', 'TX/S', 'RX PKT/S', 'TX PKT/S'],
      ...['RX TOTAL', 'TX TOTAL', 'PUBLISHED'],
    ],
    tick.containers.flatMap((c) =>
      c.interfaces.map((i) => [
        shortId(c.id),
        c.name,
        ifaceLabel(i.name, i.loopback === true),
        rate(i.rxBytesPerSec),
        rate(i.txBytesPerSec),
        pps(i.rxPacketsPerSec),
        pps(i.txPacketsPerSec),
        bytes(i.stats.rxBytes),
        bytes(i.stats.txBytes),
        publishedMark(i.name, i.loopback === true, c.publishedVia),
      ]),
    ),
  )}${formatPorts(tick.containers)}`;
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

/** `stats --watch` on the real state dir and clock, until SIGINT or SIGTERM (exit 0). */
async function watch(
  net: Networking,
  ids: string[],
  intervalMs: number,
  flags: FlagValues,
  json: boolean,
): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const warned = new Set<string>();
  // Clearing the screen only makes sense on a terminal; piped output gets
  // one table after another.
  const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
  try {
    await watchStats(
      {
        list: () => readyIds(net, flags, warned),
        open: async (id, required) => {
          const att = await load(net, id, required);
          return (
            att && {
              name: att.state.name,
              stats: () => att.stats(STATS_OPTIONS),
              close: () => att.close(),
            }
          );
        },
        now: () => performance.now(),
        date: () => new Date(),
        pause: () => pause(intervalMs, stop.signal),
      },
      ids,
      (tick) => {
        if (json) process.stdout.write(`${JSON.stringify(tick)}\n`);
        else process.stdout.write(`${clear}${formatTick(tick)}\n\n`);
      },
    );
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

const FORMATS = ['table', 'json', 'openmetrics'] as const;

/** The output format: --format, or json for --json; --json with another format is an error. */
function outputFormat(flags: FlagValues): (typeof FORMATS)[number] {
  const given = str(flags, 'format');
  const json = flags['json'] === true;
  if (given === undefined) return json ? 'json' : 'table';
  const format = FORMATS.find((f) => f === given);
  if (format === undefined)
    throw new UsageError(`--format must be ${FORMATS.join(', ')}; got '${given}'`);
  if (json && format !== 'json') throw new UsageError(`--json and --format ${format} disagree`);
  return format;
}

/** `podnet stats [ID...]`: counters once, or `--watch`ed. */
export async function stats(ids: string[], flags: FlagValues): Promise<void> {
  const interval = str(flags, 'interval');
  if (interval !== undefined && flags['watch'] !== true) {
    throw new UsageError('--interval needs --watch');
  }
  const format = outputFormat(flags);
  if (format === 'openmetrics' && flags['watch'] === true) {
    // An exposition is a snapshot for a scraper; rates are the scraper's job.
    throw new UsageError('--format openmetrics prints one exposition: it takes no --watch');
  }
  const intervalMs = interval === undefined ? 1000 : parseInterval(interval);
  const net = networkingFromFlags(flags);
  if (flags['watch'] === true) return watch(net, ids, intervalMs, flags, format === 'json');
  const all = ids.length > 0 ? ids : await readyIds(net, flags, new Set());
  const reports: ContainerStatsReport[] = [];
  for (const id of all) {
    const att = await load(net, id, ids.length > 0);
    if (att === undefined) continue;
    try {
      reports.push({ id: att.id, name: att.state.name, ...(await att.stats(STATS_OPTIONS)) });
    } finally {
      att.close();
    }
  }
  if (format === 'openmetrics') process.stdout.write(formatOpenMetrics(reports));
  else print(format === 'json', reports, () => formatStats(reports));
}
