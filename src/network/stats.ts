// A container's network statistics from the links of its namespace: pure
// functions over what one netlink dump returned, and the watch loop over
// samples on an injected clock, so they test without root.
import { type Link, type LinkStats, linkStatsFields } from '../netns/index.js';
import type {
  ContainerState,
  ContainerStats,
  InterfaceStats,
  PublishedPortStats,
  PublishedVia,
  StatsOptions,
} from './types.js';

const IFF_LOOPBACK = 8;

function zeroStats(): LinkStats {
  return Object.fromEntries(linkStatsFields.map((f) => [f, 0])) as LinkStats;
}

/** Where published-port traffic is counted, and the forwarder's counters if it publishes them. */
export interface PublishedCounters {
  publishedVia?: PublishedVia;
  ports?: PublishedPortStats[];
}

/**
 * Statistics of every interface but loopback (traffic a container sends to
 * itself is not network traffic), sorted by name in code-unit order so the
 * output does not depend on the locale or on interface indexes, and their
 * field-by-field sum. Unlike the seed, which read eth0 only, every interface
 * counts: a container on several networks has eth0, eth1, ... Sums are plain
 * numbers, exact up to 2^53. Loopback is listed too (flagged `loopback`,
 * after the others) when `options.loopback` asks, and summed only with
 * `loopbackInTotal`: with a forwarder or pasta's splice, published-port
 * traffic crosses it. `published` is copied into the result.
 */
export function summarizeStats(
  links: readonly Link[],
  options: StatsOptions = {},
  published: PublishedCounters = {},
): ContainerStats {
  const isLoopback = (l: Link): boolean => (l.flags & IFF_LOOPBACK) !== 0 || l.name === 'lo';
  const interfaces: InterfaceStats[] = links
    .filter((l) => !isLoopback(l))
    .map((l) => ({ name: l.name, stats: { ...l.statistics } }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const total = zeroStats();
  for (const { stats } of interfaces) {
    for (const f of linkStatsFields) total[f] += stats[f];
  }
  const via = published.publishedVia;
  const wantLo =
    options.loopback === true ||
    (options.loopback === 'published' && (via === 'lo' || via === 'forwarder'));
  if (wantLo) {
    for (const l of links.filter(isLoopback)) {
      interfaces.push({ name: l.name, loopback: true, stats: { ...l.statistics } });
      if (options.loopbackInTotal === true) {
        for (const f of linkStatsFields) total[f] += l.statistics[f];
      }
    }
  }
  return {
    interfaces,
    total,
    ...(via === undefined ? {} : { publishedVia: via }),
    ...(published.ports === undefined ? {} : { ports: published.ports }),
  };
}

/**
 * Which counter carries a container's published-port traffic
 * ({@link PublishedVia}), from its state and whether a forwarder answered
 * for it; undefined when it publishes no port. A rootless mode without a
 * forwarder's answer: slirp4netns's own port handler delivers on tap0,
 * pasta's splice on lo (loopback clients); slirp4netns's default handler
 * is podnet's forwarder even when its keeper could not be asked. Root
 * modes: the first network's interface, where DNATed traffic arrives.
 */
export function publishedVia(state: ContainerState, forwarded: boolean): PublishedVia | undefined {
  if (state.portMappings.length === 0) return undefined;
  if (forwarded) return 'forwarder';
  if (state.mode === 'slirp4netns') {
    const own = (state.modeOptions ?? []).includes('port_handler=slirp4netns');
    return own ? 'tap0' : 'forwarder';
  }
  if (state.mode === 'pasta') return 'lo';
  return state.networks[0]?.ifName;
}

/** Throughput of one interface between two samples (`podnet stats --watch`). */
export interface InterfaceRates {
  name: string;
  rxBytesPerSec: number;
  txBytesPerSec: number;
  rxPacketsPerSec: number;
  txPacketsPerSec: number;
}

/**
 * Per-second rates of each interface in `next`, from the counters it had in
 * `prev` taken `seconds` earlier. A counter that went down means the
 * interface was recreated under the same name (or the counter was reset), so
 * there is no meaningful delta: its rate is 0 rather than negative. An
 * interface absent from `prev` has no baseline and gets 0 too, rather than
 * its whole lifetime's traffic as one spike. Throws RangeError unless
 * `seconds` is a positive finite number.
 */
export function statsRates(
  prev: ContainerStats,
  next: ContainerStats,
  seconds: number,
): InterfaceRates[] {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new RangeError(`seconds must be a positive number, got ${seconds}`);
  }
  const before = new Map(prev.interfaces.map((i) => [i.name, i.stats]));
  return next.interfaces.map(({ name, stats }) => {
    const old = before.get(name);
    const rate = (f: 'rxBytes' | 'txBytes' | 'rxPackets' | 'txPackets'): number =>
      old === undefined || stats[f] < old[f] ? 0 : (stats[f] - old[f]) / seconds;
    return {
      name,
      rxBytesPerSec: rate('rxBytes'),
      txBytesPerSec: rate('txBytes'),
      rxPacketsPerSec: rate('rxPackets'),
      txPacketsPerSec: rate('txPackets'),
    };
  });
}

/**
 * One interface in a frame of a watch: its counters, and its rates since
 * the previous frame (absent in its container's first frame).
 */
export interface InterfaceWatch extends Partial<InterfaceRates> {
  name: string;
  loopback?: true;
  stats: LinkStats;
}

/** One container in a frame of a watch. */
export interface ContainerFrame {
  /** Every interface of the sample (lo flagged, when asked for), with rates from the second frame. */
  interfaces: InterfaceWatch[];
  /** The interfaces' counters summed (as ContainerStats.total). */
  total: LinkStats;
  /** As ContainerStats.publishedVia. */
  publishedVia?: PublishedVia;
  /** As ContainerStats.ports: the forwarder's per-port counters. */
  ports?: PublishedPortStats[];
  /** Seconds since this container's previous sample (absent in its first frame). */
  seconds?: number;
}

/** The pace of a watch; injected, so tests run it on a fake clock. */
export interface WatchClock {
  /** Milliseconds on a monotonic clock (rates are taken against it). */
  now(): number;
  /** Wall-clock time of a frame. */
  date(): Date;
  /** Waits one interval; false when the watch is to end. */
  pause(): Promise<boolean>;
}

/**
 * The one watch loop, under `Attachment.watchStats` and `podnet stats
 * --watch`: samples at once, then after each pause, and yields a frame per
 * sample with each container's rates against its previous sample. A key
 * that `sample` no longer returns is forgotten, so one that comes back
 * starts again with counters only. Pull-based: nothing is sampled while the
 * consumer holds a frame, so a slow consumer gets frames further apart, and
 * rates over the time that really passed.
 */
export async function* watchFrames<K>(
  sample: () => Promise<ReadonlyMap<K, ContainerStats>>,
  clock: WatchClock,
): AsyncGenerator<{ time: Date; containers: Map<K, ContainerFrame> }, void, undefined> {
  let prev = new Map<K, { stats: ContainerStats; at: number }>();
  do {
    const time = clock.date();
    const samples = await sample();
    const at = clock.now();
    const containers = new Map<K, ContainerFrame>();
    const next = new Map<K, { stats: ContainerStats; at: number }>();
    for (const [key, stats] of samples) {
      const before = prev.get(key);
      const seconds = before !== undefined && at > before.at ? (at - before.at) / 1000 : undefined;
      const rates = seconds === undefined ? undefined : statsRates(before!.stats, stats, seconds);
      containers.set(key, {
        interfaces: stats.interfaces.map((i, n) => ({ ...rates?.[n], ...i })),
        total: stats.total,
        ...(stats.publishedVia === undefined ? {} : { publishedVia: stats.publishedVia }),
        ...(stats.ports === undefined ? {} : { ports: stats.ports }),
        ...(seconds === undefined ? {} : { seconds }),
      });
      next.set(key, { stats, at });
    }
    prev = next;
    yield { time, containers };
  } while (await clock.pause());
}
