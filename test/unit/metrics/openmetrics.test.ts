// The OpenMetrics writer against a strict parser (test/helpers/openmetrics.ts),
// the parser against the spec's own examples and rule breaks, and the
// histograms fed from the tracing channels: all without root.
import { describe, expect, it } from 'vitest';
import { traced } from '../../../src/diagnostics.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import {
  type ContainerNetworkStats,
  canonicalNumber,
  DurationHistogram,
  formatOpenMetrics,
  networkCounters,
  PodnetMetrics,
  portCounters,
} from '../../../src/metrics/index.js';
import { type LinkStats, linkStatsFields } from '../../../src/netns/index.js';
import { parseOpenMetrics, sampleValue } from '../../helpers/openmetrics.js';

function counters(seed: number): LinkStats {
  return Object.fromEntries(linkStatsFields.map((f, i) => [f, seed * 1000 + i])) as LinkStats;
}

function container(id: string, name: string, ifaces: [string, number][]): ContainerNetworkStats {
  const interfaces = ifaces.map(([n, seed]) => ({ name: n, stats: counters(seed) }));
  return { id, name, interfaces, total: counters(0) };
}

describe('the strict parser', () => {
  it("accepts the spec's examples", () => {
    const text = [
      '# TYPE acme_http_router_request_seconds summary',
      '# UNIT acme_http_router_request_seconds seconds',
      "# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.",
      'acme_http_router_request_seconds_sum{path="/api/v1",method="GET"} 9036.32',
      'acme_http_router_request_seconds_count{path="/api/v1",method="GET"} 807283.0',
      '# TYPE process_cpu_seconds counter',
      'process_cpu_seconds_total 4.20072246e+06',
      '# TYPE foo histogram',
      'foo_bucket{le="0.0"} 0',
      'foo_bucket{le="1e-05"} 0',
      'foo_bucket{le="1.0"} 10',
      'foo_bucket{le="+Inf"} 17',
      'foo_count 17',
      'foo_sum 324789.3',
      '# TYPE bar_seconds summary',
      'bar_seconds_count{a="x",b="escaping\\" example \\n "} 0',
      '# EOF',
    ];
    const ok = parseOpenMetrics(lines(text));
    expect(ok.map((f) => [f.name, f.type])).toEqual([
      ['acme_http_router_request_seconds', 'summary'],
      ['process_cpu_seconds', 'counter'],
      ['foo', 'histogram'],
      ['bar_seconds', 'summary'],
    ]);
    expect(ok[3]?.samples[0]?.labels['b']).toBe('escaping" example \n ');
    expect(sampleValue(ok, 'process_cpu_seconds_total', {})).toBe(4200722.46);
  });

  const good = ['# TYPE a counter', '# HELP a An a', 'a_total{x="1"} 1', '# EOF'];
  it.each([
    ['no # EOF', good.slice(0, 3)],
    ['a counter sample without _total', ['# TYPE a counter', 'a{x="1"} 1', '# EOF']],
    ['a carriage return', ['# TYPE a counter\r', 'a_total 1', '# EOF']],
    ['an unescaped quote', ['# TYPE a counter', 'a_total{x="a"b"} 1', '# EOF']],
    ['an undefined escape', ['# TYPE a counter', 'a_total{x="a\\tb"} 1', '# EOF']],
    ['metadata after samples', ['# TYPE a counter', 'a_total 1', '# HELP a late', '# EOF']],
    ['a repeated label set', ['# TYPE a counter', 'a_total{x="1"} 1', 'a_total{x="1"} 2', '# EOF']],
    [
      'interleaved families',
      ['# TYPE a counter', 'a_total 1', '# TYPE b gauge', 'b 1', '# TYPE a counter', '# EOF'],
    ],
    [
      'interleaved metrics',
      ['# TYPE a counter', 'a_total{x="1"} 1', 'a_total{x="2"} 1', 'a_created{x="1"} 1', '# EOF'],
    ],
    ['a negative counter', ['# TYPE a counter', 'a_total -1', '# EOF']],
    ['a unit that is not a suffix', ['# TYPE a counter', '# UNIT a bytes', '# EOF']],
    ['a histogram without +Inf', ['# TYPE h histogram', 'h_bucket{le="1.0"} 1', '# EOF']],
    [
      'unsorted buckets',
      [
        '# TYPE h histogram',
        'h_bucket{le="2.0"} 1',
        'h_bucket{le="1.0"} 1',
        'h_bucket{le="+Inf"} 1',
        '# EOF',
      ],
    ],
    [
      'a _count that is not the +Inf bucket',
      ['# TYPE h histogram', 'h_bucket{le="+Inf"} 2', 'h_count 1', 'h_sum 1', '# EOF'],
    ],
    ['text after EOF', [...good, 'a_total 2']],
  ])('rejects %s', (_, text) => {
    expect(() => parseOpenMetrics(lines(text))).toThrow();
  });
});

function lines(l: string[]): string {
  return `${l.join('\n')}\n`;
}

describe('formatOpenMetrics', () => {
  it("writes the forwarder's per-port counters, only when a container has them", () => {
    const published = {
      ...container('fwd1', 'web', [['tap0', 1]]),
      publishedVia: 'forwarder',
      ports: [
        {
          hostIP: '127.0.0.1',
          hostPort: 8080,
          containerPort: 80,
          protocol: 'tcp' as const,
          connections: 3,
          active: 1,
          rxBytes: 300,
          txBytes: 9000,
          rxDatagrams: 0,
          txDatagrams: 0,
        },
      ],
    };
    const families = parseOpenMetrics(formatOpenMetrics([published, container('db1', 'db', [])]));
    expect(families.map((f) => f.name)).toEqual([
      ...networkCounters.map((c) => c.family),
      ...portCounters.map((c) => c.family),
    ]);
    const labels = {
      id: 'fwd1',
      name: 'web',
      host_ip: '127.0.0.1',
      host_port: '8080',
      container_port: '80',
      protocol: 'tcp',
    };
    for (const counter of portCounters) {
      expect(sampleValue(families, `${counter.family}_total`, labels), counter.family).toBe(
        published.ports[0]![counter.field],
      );
    }
    const none = parseOpenMetrics(formatOpenMetrics([container('db1', 'db', [['eth0', 1]])]));
    expect(none.map((f) => f.name)).toEqual(networkCounters.map((c) => c.family));
  });

  it("writes cAdvisor's counters per interface, equal to the stats, with TYPE, UNIT, HELP and EOF", () => {
    const stats = [
      container('a'.repeat(64), 'web', [
        ['eth0', 1],
        ['eth1', 2],
      ]),
      container('db1', 'db', [['eth0', 3]]),
    ];
    const text = formatOpenMetrics(stats);
    expect(text.endsWith('# EOF\n')).toBe(true);
    const families = parseOpenMetrics(text);
    expect(families.map((f) => f.name)).toEqual(networkCounters.map((c) => c.family));
    expect(families.every((f) => f.type === 'counter')).toBe(true);
    expect(families[0]).toMatchObject({
      unit: 'bytes',
      help: 'Cumulative count of bytes received',
    });
    for (const c of stats) {
      for (const i of c.interfaces) {
        for (const counter of networkCounters) {
          expect(
            sampleValue(families, `${counter.family}_total`, {
              id: c.id,
              name: c.name,
              interface: i.name,
            }),
          ).toBe(i.stats[counter.field]);
        }
      }
    }
    expect(text).toContain(
      'container_network_transmit_packets_dropped_total{id="db1",name="db",interface="eth0"} ',
    );
  });

  it('escapes label values so that they read back as they were', () => {
    const name = 'we"ird\\name\nwith a line\uD800';
    const families = parseOpenMetrics(formatOpenMetrics([container('x', name, [['eth0', 1]])]));
    expect(families[0]?.samples[0]?.labels['name']).toBe('we"ird\\name\nwith a line\uFFFD');
  });

  it('writes every family, without samples, when there are no containers', () => {
    const families = parseOpenMetrics(formatOpenMetrics([]));
    expect(families).toHaveLength(8);
    expect(families.every((f) => f.samples.length === 0)).toBe(true);
  });

  it('refuses a container listed twice (its series would clash)', () => {
    const c = container('x', 'x', [['eth0', 1]]);
    expect(() => formatOpenMetrics([c, c])).toThrow(InvalidArgumentError);
  });
});

describe('canonicalNumber', () => {
  it("renders le values as the spec's examples", () => {
    const values = [0, 0.001, 0.002, 0.01, 0.1, 0.9, 0.95, 0.99, 0.999, 1, 1.7, 10];
    expect(values.map(canonicalNumber)).toEqual(
      '0.0 0.001 0.002 0.01 0.1 0.9 0.95 0.99 0.999 1.0 1.7 10.0'.split(' '),
    );
    const powers = [1e-10, 1e-9, 1e-5, 1e-4, 0.1, 1, 1e5, 1e6, 1e10, 1.1e23];
    expect(powers.map(canonicalNumber)).toEqual(
      '1e-10 1e-09 1e-05 0.0001 0.1 1.0 100000.0 1e+06 1e+10 1.1e+23'.split(' '),
    );
    expect(canonicalNumber(Number.POSITIVE_INFINITY)).toBe('+Inf');
  });
});

describe('DurationHistogram', () => {
  it('counts observations into cumulative buckets that parse strictly', () => {
    const h = new DurationHistogram('t_seconds', 'A test', ['outcome'], [0.1, 1]);
    h.observe({ outcome: 'ok' }, 0.05);
    h.observe({ outcome: 'ok' }, 0.5);
    h.observe({ outcome: 'ok' }, 5);
    h.observe({ outcome: 'error' }, 0.1);
    const [f] = parseOpenMetrics(formatOpenMetrics([], [h.snapshot()])).slice(8);
    expect(f).toMatchObject({ name: 't_seconds', type: 'histogram', unit: 'seconds' });
    const at = (le: string, outcome: string) =>
      sampleValue([f!], 't_seconds_bucket', { outcome, le });
    expect([at('0.1', 'ok'), at('1.0', 'ok'), at('+Inf', 'ok')]).toEqual([1, 2, 3]);
    expect(sampleValue([f!], 't_seconds_count', { outcome: 'error' })).toBe(1);
    expect(sampleValue([f!], 't_seconds_sum', { outcome: 'ok' })).toBeCloseTo(5.55);
  });

  it('refuses buckets that are not strictly ascending', () => {
    expect(() => new DurationHistogram('t_seconds', 'x', [], [1, 1])).toThrow(InvalidArgumentError);
    expect(() => new DurationHistogram('t_seconds', 'x', [], [])).toThrow(InvalidArgumentError);
  });
});

describe('PodnetMetrics', () => {
  it('times each traced operation from its start to its end, ok or error, until closed', async () => {
    const metrics = new PodnetMetrics();
    await traced('podnet:network:setup', { id: 'u1', name: 'u1' }, async () => 'done');
    await expect(
      traced('podnet:network:setup', { id: 'u2', name: 'u2' }, async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    await traced(
      'podnet:cni:exec',
      { plugin: 'bridge', command: 'ADD', path: '/x' },
      async () => 1,
    );
    metrics.close();
    await traced('podnet:network:setup', { id: 'u3', name: 'u3' }, async () => 'after close');
    const families = parseOpenMetrics(await metrics.openMetrics());
    expect(sampleValue(families, 'podnet_setup_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    expect(sampleValue(families, 'podnet_setup_duration_seconds_count', { outcome: 'error' })).toBe(
      1,
    );
    expect(
      sampleValue(families, 'podnet_plugin_exec_duration_seconds_count', {
        plugin: 'bridge',
        command: 'ADD',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(families.find((f) => f.name === 'podnet_teardown_duration_seconds')?.samples).toEqual(
      [],
    );
  });
});
