/**
 * `podnet/metrics`: podnet's metrics for dashboards. The network counters of
 * containers under cAdvisor's names
 * (`container_network_receive_bytes_total{id,name,interface}` and the rest),
 * histograms of setup, teardown and plugin execution time, as OpenMetrics
 * text or through prom-client when the application has it.
 *
 * ```ts
 * import { PodnetMetrics, OPENMETRICS_CONTENT_TYPE } from 'podnet/metrics';
 * const metrics = new PodnetMetrics({ networking });
 * http.createServer(async (_req, res) => {
 *   res.setHeader('content-type', OPENMETRICS_CONTENT_TYPE);
 *   res.end(await metrics.openMetrics());
 * });
 * ```
 * @packageDocumentation
 */
export {
  DEFAULT_BUCKETS,
  DurationHistogram,
  type ObservationListener,
} from './histogram.js';
export { PodnetMetrics, type PodnetMetricsOptions, readContainerStats } from './metrics.js';
export {
  type ContainerNetworkStats,
  canonicalNumber,
  escapeOpenMetrics,
  formatOpenMetrics,
  type HistogramSeries,
  type HistogramSnapshot,
  type NetworkCounter,
  networkCounters,
  OPENMETRICS_CONTENT_TYPE,
  type PortCounter,
  portCounters,
} from './openmetrics.js';
export {
  type PromClientOptions,
  type PromClientRegistry,
  registerPromClient,
} from './prom-client.js';
