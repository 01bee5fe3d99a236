// The OpenMetrics 1.0 text format, written by hand: the exposition is small
// (counters and a few histograms), and its rules are few but strict:
// families not interleaved, a counter's samples named `<family>_total`,
// histogram buckets cumulative and sorted with `le` in canonical form,
// escaped label values and HELP, `# EOF` last.
import { InvalidArgumentError } from '../errors.js';
import type { LinkStatsField } from '../netns/index.js';
import type { ContainerStats, PublishedPortStats } from '../network/index.js';

/** The content type of an OpenMetrics 1.0 text exposition, for an HTTP scrape. */
export const OPENMETRICS_CONTENT_TYPE =
  'application/openmetrics-text; version=1.0.0; charset=utf-8';

/** One container's counters, as `podnet stats --json` prints them and the metrics read them. */
export interface ContainerNetworkStats extends ContainerStats {
  /** Container ID (cAdvisor's `id` label). */
  id: string;
  /** Container name (cAdvisor's `name` label). */
  name: string;
}

/** One of cAdvisor's per-interface network counters, and the LinkStats field it reads. */
export interface NetworkCounter {
  /** The metric family: its samples are `<family>_total`. */
  family: string;
  field: LinkStatsField;
  help: string;
  unit?: 'bytes';
}

/**
 * cAdvisor's network counters (metrics/prometheus.go), in its order and with
 * its help texts, so dashboards built for cAdvisor read podnet unchanged.
 * Their labels are `id`, `name` and `interface`.
 */
export const networkCounters: readonly NetworkCounter[] = [
  {
    family: 'container_network_receive_bytes',
    field: 'rxBytes',
    help: 'Cumulative count of bytes received',
    unit: 'bytes',
  },
  {
    family: 'container_network_receive_packets',
    field: 'rxPackets',
    help: 'Cumulative count of packets received',
  },
  {
    family: 'container_network_receive_packets_dropped',
    field: 'rxDropped',
    help: 'Cumulative count of packets dropped while receiving',
  },
  {
    family: 'container_network_receive_errors',
    field: 'rxErrors',
    help: 'Cumulative count of errors encountered while receiving',
  },
  {
    family: 'container_network_transmit_bytes',
    field: 'txBytes',
    help: 'Cumulative count of bytes transmitted',
    unit: 'bytes',
  },
  {
    family: 'container_network_transmit_packets',
    field: 'txPackets',
    help: 'Cumulative count of packets transmitted',
  },
  {
    family: 'container_network_transmit_packets_dropped',
    field: 'txDropped',
    help: 'Cumulative count of packets dropped while transmitting',
  },
  {
    family: 'container_network_transmit_errors',
    field: 'txErrors',
    help: 'Cumulative count of errors encountered while transmitting',
  },
];

/** One of the counters of a port published by podnet's forwarder, and the field it reads. */
export interface PortCounter {
  /** The metric family: its samples are `<family>_total`. */
  family: string;
  field: 'connections' | 'rxBytes' | 'txBytes' | 'rxDatagrams' | 'txDatagrams';
  help: string;
  unit?: 'bytes';
}

/**
 * The forwarder's per-port counters (ContainerStats.ports; podnet's own
 * names, cAdvisor has none), in the container's view as the interfaces'
 * are: receive is what clients sent to the container. Their labels are
 * `id`, `name`, `host_ip`, `host_port`, `container_port` and `protocol`.
 */
export const portCounters: readonly PortCounter[] = [
  {
    family: 'podnet_published_port_connections',
    field: 'connections',
    help: 'Cumulative count of TCP connections forwarded',
  },
  {
    family: 'podnet_published_port_receive_bytes',
    field: 'rxBytes',
    help: 'Cumulative count of bytes forwarded to the container',
    unit: 'bytes',
  },
  {
    family: 'podnet_published_port_transmit_bytes',
    field: 'txBytes',
    help: 'Cumulative count of bytes forwarded back to clients',
    unit: 'bytes',
  },
  {
    family: 'podnet_published_port_receive_datagrams',
    field: 'rxDatagrams',
    help: 'Cumulative count of UDP datagrams forwarded to the container',
  },
  {
    family: 'podnet_published_port_transmit_datagrams',
    field: 'txDatagrams',
    help: 'Cumulative count of UDP datagrams forwarded back to clients',
  },
];

function portLabels(c: ContainerNetworkStats, p: PublishedPortStats): Record<string, string> {
  return {
    id: c.id,
    name: c.name,
    host_ip: p.hostIP,
    host_port: String(p.hostPort),
    container_port: String(p.containerPort),
    protocol: p.protocol,
  };
}

/** One labelled series of a histogram: cumulative bucket counts, count and sum. */
export interface HistogramSeries {
  labels: Readonly<Record<string, string>>;
  /** Observations at most each bound of the histogram's `buckets`, cumulative. */
  buckets: readonly number[];
  count: number;
  sum: number;
}

/** A histogram as exposed: its family name, help, bucket bounds and series. */
export interface HistogramSnapshot {
  name: string;
  help: string;
  /** Upper bounds, ascending, finite (+Inf is implied). */
  bounds: readonly number[];
  series: readonly HistogramSeries[];
}

/**
 * A label value or HELP text escaped as the spec's ABNF says (backslash,
 * double quote, line feed); a lone surrogate, which is not UTF-8, becomes
 * U+FFFD.
 */
export function escapeOpenMetrics(text: string): string {
  return text
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replaceAll('\\', '\\\\')
    .replaceAll('"', '\\"')
    .replaceAll('\n', '\\n');
}

/**
 * The canonical rendering of an `le` value: Go's shortest %g (exponent
 * form below 1e-4 and from 1e+06, a two-digit exponent), with `.0` added
 * when there is neither a point nor an exponent; `+Inf` for infinity.
 */
export function canonicalNumber(x: number): string {
  if (x === Number.POSITIVE_INFINITY) return '+Inf';
  if (x === Number.NEGATIVE_INFINITY) return '-Inf';
  if (Number.isNaN(x)) return 'NaN';
  if (x === 0) return '0.0';
  const [mantissa = '', exp = '0'] = x.toExponential().split('e');
  const e = Number(exp);
  if (e < -4 || e >= 6) {
    const sign = e < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  const fixed = String(x);
  return fixed.includes('.') ? fixed : `${fixed}.0`;
}

function labelSet(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeOpenMetrics(v)}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function metadata(lines: string[], family: string, type: string, help: string, unit?: string) {
  lines.push(`# TYPE ${family} ${type}`);
  if (unit !== undefined) lines.push(`# UNIT ${family} ${unit}`);
  lines.push(`# HELP ${family} ${escapeOpenMetrics(help)}`);
}

/**
 * An OpenMetrics 1.0 exposition of `containers`' network counters under
 * cAdvisor's names (`container_network_receive_bytes_total{id,name,interface}`
 * and the rest), then the forwarder's per-port counters ({@link portCounters})
 * when any container has them, then `histograms`, then `# EOF`. Every
 * other family is written, with no samples when there is nothing to count. Throws
 * InvalidArgumentError when two containers have the same ID (their series
 * would clash).
 */
export function formatOpenMetrics(
  containers: readonly ContainerNetworkStats[],
  histograms: readonly HistogramSnapshot[] = [],
): string {
  const ids = new Set<string>();
  for (const c of containers) {
    if (ids.has(c.id)) throw new InvalidArgumentError(`container '${c.id}' is listed twice`);
    ids.add(c.id);
  }
  const lines: string[] = [];
  for (const counter of networkCounters) {
    metadata(lines, counter.family, 'counter', counter.help, counter.unit);
    for (const c of containers) {
      for (const i of c.interfaces) {
        const labels = labelSet({ id: c.id, name: c.name, interface: i.name });
        lines.push(`${counter.family}_total${labels} ${i.stats[counter.field]}`);
      }
    }
  }
  // Only where podnet's forwarder publishes ports: a scrape of root
  // containers keeps cAdvisor's families alone.
  if (containers.some((c) => c.ports !== undefined)) {
    for (const counter of portCounters) {
      metadata(lines, counter.family, 'counter', counter.help, counter.unit);
      for (const c of containers) {
        for (const p of c.ports ?? []) {
          lines.push(`${counter.family}_total${labelSet(portLabels(c, p))} ${p[counter.field]}`);
        }
      }
    }
  }
  for (const h of histograms) {
    metadata(
      lines,
      h.name,
      'histogram',
      h.help,
      h.name.endsWith('_seconds') ? 'seconds' : undefined,
    );
    for (const s of h.series) {
      h.bounds.forEach((bound, n) => {
        lines.push(
          `${h.name}_bucket${labelSet({ ...s.labels, le: canonicalNumber(bound) })} ${s.buckets[n] ?? 0}`,
        );
      });
      lines.push(`${h.name}_bucket${labelSet({ ...s.labels, le: '+Inf' })} ${s.count}`);
      lines.push(`${h.name}_count${labelSet(s.labels)} ${s.count}`);
      lines.push(`${h.name}_sum${labelSet(s.labels)} ${s.sum}`);
    }
  }
  lines.push('# EOF');
  return `${lines.join('\n')}\n`;
}
