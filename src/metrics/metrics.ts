// What a dashboard scrapes from a process that runs podnet: the counters of
// every ready container (read from the state dir at each scrape, so
// containers set up by any process count) and the durations of this
// process's setups, teardowns and plugin executions.
import { isPodnetError } from '../errors.js';
import type { Networking } from '../network/index.js';
import { DEFAULT_BUCKETS, DurationHistogram, timeOperations } from './histogram.js';
import { type ContainerNetworkStats, formatOpenMetrics } from './openmetrics.js';

/** Options of {@link PodnetMetrics}. */
export interface PodnetMetricsOptions {
  /** Whose containers' counters to expose (none without it: histograms only). */
  networking?: Networking;
  /** Bucket bounds in seconds of every histogram (default {@link DEFAULT_BUCKETS}). */
  buckets?: readonly number[];
}

const GONE = new Set(['ERR_PODNET_NO_SUCH_CONTAINER', 'ERR_PODNET_NAMESPACE_GONE']);

/**
 * The ready containers of `net` with their counters. A container torn down
 * while it is read is left out; any other failure is thrown. Each container
 * is opened and closed again (for a rootless one, that joins its namespace
 * through a helper process: a scrape costs one process start per rootless
 * container).
 */
export async function readContainerStats(net: Networking): Promise<ContainerNetworkStats[]> {
  const out: ContainerNetworkStats[] = [];
  for (const state of await net.list()) {
    if (state.phase !== 'ready') continue;
    try {
      const att = await net.load(state.id);
      try {
        out.push({ id: att.id, name: att.state.name, ...(await att.stats()) });
      } finally {
        att.close();
      }
    } catch (e) {
      if (isPodnetError(e) && GONE.has(e.code)) continue;
      // A namespace that went away under the read: gone too, if its state
      // did (a state that no longer reads is not proof: the error stands).
      if ((await net.store.read(state.id).catch(() => state)) === undefined) continue;
      throw e;
    }
  }
  return out;
}

/**
 * podnet's metrics in this process: histograms of setup, teardown and
 * plugin execution time, fed from the tracing channels from construction
 * until close(), and on each scrape the network counters of the ready
 * containers of `networking`, under cAdvisor's names.
 */
export class PodnetMetrics implements Disposable {
  /** `podnet_setup_duration_seconds{outcome}`: Networking.setup, from call to handle or error. */
  readonly setupDuration: DurationHistogram;
  /** `podnet_teardown_duration_seconds{outcome}`: Attachment.teardown. */
  readonly teardownDuration: DurationHistogram;
  /** `podnet_plugin_exec_duration_seconds{plugin,command,outcome}`: one CNI plugin process. */
  readonly pluginExecDuration: DurationHistogram;
  readonly #networking: Networking | undefined;
  readonly #unsubscribe: (() => void)[];

  constructor(options: PodnetMetricsOptions = {}) {
    const buckets = options.buckets ?? DEFAULT_BUCKETS;
    this.#networking = options.networking;
    this.setupDuration = new DurationHistogram(
      'podnet_setup_duration_seconds',
      "Time a container's network setup took",
      ['outcome'],
      buckets,
    );
    this.teardownDuration = new DurationHistogram(
      'podnet_teardown_duration_seconds',
      "Time a container's network teardown took",
      ['outcome'],
      buckets,
    );
    this.pluginExecDuration = new DurationHistogram(
      'podnet_plugin_exec_duration_seconds',
      'Time one CNI plugin execution took',
      ['plugin', 'command', 'outcome'],
      buckets,
    );
    this.#unsubscribe = [
      timeOperations('podnet:network:setup', this.setupDuration),
      timeOperations('podnet:network:teardown', this.teardownDuration),
      timeOperations('podnet:cni:exec', this.pluginExecDuration, (c) => ({
        plugin: String(c['plugin']),
        command: String(c['command']),
      })),
    ];
  }

  /** The three histograms. */
  get histograms(): DurationHistogram[] {
    return [this.setupDuration, this.teardownDuration, this.pluginExecDuration];
  }

  /** The counters of the ready containers now (none without a Networking). */
  containers(): Promise<ContainerNetworkStats[]> {
    return this.#networking ? readContainerStats(this.#networking) : Promise.resolve([]);
  }

  /** A whole OpenMetrics exposition: the counters read now, the histograms, `# EOF`. */
  async openMetrics(): Promise<string> {
    const containers = await this.containers();
    return formatOpenMetrics(
      containers,
      this.histograms.map((h) => h.snapshot()),
    );
  }

  /** Stops recording (what was recorded stays readable). */
  close(): void {
    for (const stop of this.#unsubscribe.splice(0)) stop();
  }

  /** close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
