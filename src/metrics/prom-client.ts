// prom-client, when the application has it: podnet's metrics as prom-client
// metrics in its registry, so one /metrics endpoint serves both. prom-client
// is an optional peer dependency, imported only when asked for.
import { PodnetError } from '../errors.js';
import type { PodnetMetrics } from './metrics.js';
import { type ContainerNetworkStats, networkCounters } from './openmetrics.js';

/** What podnet needs of a prom-client Registry (pass the Registry itself). */
export interface PromClientRegistry {
  removeSingleMetric(name: string): void;
}

/** Options of {@link registerPromClient}. */
export interface PromClientOptions {
  /** The registry to add to (default prom-client's global `register`). */
  registry?: PromClientRegistry;
}

type PromClient = typeof import('prom-client');

async function loadPromClient(): Promise<PromClient> {
  try {
    return await import('prom-client');
  } catch (cause) {
    throw new PodnetError(
      'ERR_PODNET_MISSING_PEER',
      'registerPromClient needs the prom-client package: install it beside podnet (npm i prom-client)',
      { cause },
    );
  }
}

/**
 * Adds `metrics` to a prom-client registry: the eight cAdvisor counters as
 * Counters whose `collect` reads the containers at scrape time (one read
 * shared by all eight), and the three histograms as Histograms that get
 * every observation `metrics` records from now on. Resolves to the function
 * that takes them out again. Rejects with ERR_PODNET_MISSING_PEER when
 * prom-client is not installed.
 */
export async function registerPromClient(
  metrics: PodnetMetrics,
  options: PromClientOptions = {},
): Promise<() => void> {
  const prom = await loadPromClient();
  const registry = (options.registry ?? prom.register) as InstanceType<PromClient['Registry']>;
  // prom-client collects every metric of a scrape at once: they share the
  // read in flight rather than reading the containers eight times.
  let inFlight: Promise<ContainerNetworkStats[]> | undefined;
  const read = (): Promise<ContainerNetworkStats[]> => {
    inFlight ??= metrics.containers().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };
  const names: string[] = [];
  for (const counter of networkCounters) {
    const name = `${counter.family}_total`;
    names.push(name);
    new prom.Counter({
      name,
      help: counter.help,
      labelNames: ['id', 'name', 'interface'],
      registers: [registry],
      async collect() {
        const containers = await read();
        this.reset();
        for (const c of containers) {
          for (const i of c.interfaces)
            this.inc({ id: c.id, name: c.name, interface: i.name }, i.stats[counter.field]);
        }
      },
    });
  }
  const stops = metrics.histograms.map((h) => {
    names.push(h.name);
    const histogram = new prom.Histogram({
      name: h.name,
      help: h.help,
      labelNames: [...h.labelNames],
      buckets: [...h.bounds],
      registers: [registry],
    });
    return h.onObserve((labels, seconds) => histogram.observe(labels, seconds));
  });
  return () => {
    for (const stop of stops) stop();
    for (const name of names) registry.removeSingleMetric(name);
  };
}
