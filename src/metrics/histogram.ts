// Duration histograms kept in this process, fed by podnet's tracing
// channels: one start time per operation (on its context object, which
// every event of that operation shares), one observation at its end.
import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { TracingChannelName } from '../diagnostics.js';
import { InvalidArgumentError } from '../errors.js';
import type { HistogramSeries, HistogramSnapshot } from './openmetrics.js';

/** prom-client's and the Prometheus clients' default bounds, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** Called with each observation of a {@link DurationHistogram}. */
export type ObservationListener = (
  labels: Readonly<Record<string, string>>,
  seconds: number,
) => void;

/** A histogram of durations in seconds, one series per label set. */
export class DurationHistogram {
  /** Family name (ends in `_seconds`). */
  readonly name: string;
  /** Its HELP text. */
  readonly help: string;
  /** The label names every observation has, in this order. */
  readonly labelNames: readonly string[];
  /** Upper bounds of the buckets, ascending (+Inf implied). */
  readonly bounds: readonly number[];
  readonly #series = new Map<
    string,
    { labels: Record<string, string>; counts: number[]; count: number; sum: number }
  >();
  readonly #listeners = new Set<ObservationListener>();

  /** Throws InvalidArgumentError unless `bounds` are finite and strictly ascending. */
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    bounds: readonly number[] = DEFAULT_BUCKETS,
  ) {
    if (
      bounds.length === 0 ||
      bounds.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= bounds[i - 1]!))
    )
      throw new InvalidArgumentError(
        `buckets must be finite and strictly ascending, got ${bounds.join(',')}`,
      );
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
    this.bounds = [...bounds];
  }

  /** Counts one duration in the series of `labels` (which must have exactly the label names). */
  observe(labels: Readonly<Record<string, string>>, seconds: number): void {
    const ordered = Object.fromEntries(this.labelNames.map((n) => [n, labels[n] ?? '']));
    const key = JSON.stringify(Object.values(ordered));
    let s = this.#series.get(key);
    if (s === undefined) {
      s = { labels: ordered, counts: this.bounds.map(() => 0), count: 0, sum: 0 };
      this.#series.set(key, s);
    }
    this.bounds.forEach((b, i) => {
      if (seconds <= b) s.counts[i]! += 1;
    });
    s.count += 1;
    s.sum += seconds;
    for (const listener of this.#listeners) listener(ordered, seconds);
  }

  /** Calls `listener` with every observation from now on; returns the function that stops it. */
  onObserve(listener: ObservationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The histogram as it is now, series in the order they first appeared. */
  snapshot(): HistogramSnapshot {
    const series: HistogramSeries[] = [...this.#series.values()].map((s) => ({
      labels: { ...s.labels },
      buckets: [...s.counts],
      count: s.count,
      sum: s.sum,
    }));
    return { name: this.name, help: this.help, bounds: this.bounds, series };
  }
}

/**
 * Feeds `histogram` from tracing channel `name`: the time from each
 * operation's start to its asyncEnd, labelled by `labels(context)` and
 * `outcome` (`ok`, or `error` when the operation failed). Returns the
 * function that unsubscribes.
 */
export function timeOperations(
  name: TracingChannelName,
  histogram: DurationHistogram,
  labels: (context: Record<string, unknown>) => Record<string, string> = () => ({}),
): () => void {
  const started = new WeakMap<object, number>();
  const ch = diagnosticsChannel.tracingChannel<unknown, Record<string, unknown>>(name);
  const handlers = {
    start: (context: Record<string, unknown>) => {
      started.set(context, performance.now());
    },
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (context: Record<string, unknown>) => {
      const t0 = started.get(context);
      if (t0 === undefined) return;
      started.delete(context);
      const outcome = 'error' in context ? 'error' : 'ok';
      histogram.observe({ ...labels(context), outcome }, (performance.now() - t0) / 1000);
    },
    error: () => {},
  };
  ch.subscribe(handlers);
  return () => {
    ch.unsubscribe(handlers);
  };
}
