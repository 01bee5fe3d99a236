// podnet/metrics, the tracing channels and watchStats on real containers:
// bridge setups on private test networks with the Debian plugins, a fake
// plugin last in the chain that records the environment it was given, UDP
// traffic from the host into the container's own address.
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ContainerNetworkStats,
  networkCounters,
  PodnetMetrics,
  readContainerStats,
  registerPromClient,
} from '../../../src/metrics/index.js';
import type { Attachment, Networking, StatsFrame } from '../../../src/network/index.js';
import { isRoot, TEST_PREFIX } from '../../helpers/host.js';
import { netEnvPerTest } from '../../helpers/network-env.js';
import { type Family, parseOpenMetrics, sampleValue } from '../../helpers/openmetrics.js';
import { run } from '../../helpers/process.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const PLUGIN_SPAN = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01';
const TEARDOWN_SPAN = '00-4bf92f3577b34da6a3ce929d0e0e4736-53995c3f42cd8ad8-01';

/** Sends COUNT datagrams from the host to the container's address (nothing listens: it answers ICMP). */
async function traffic(a: Attachment, count = 5): Promise<void> {
  const ip = a.inspect().IPAddress;
  const socket = dgram.createSocket('udp4');
  try {
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) =>
        socket.send(Buffer.alloc(200, i), 9, ip, (e) => (e ? reject(e) : resolve())),
      );
    }
  } finally {
    socket.close();
  }
}

/**
 * Reads an exposition between two reads of the stats, until both reads
 * agree (an idle namespace's IPv6 may send a packet meanwhile): the
 * exposition was then taken while the counters stood still.
 */
async function steadyExposition(
  net: Networking,
  expose: () => Promise<string>,
): Promise<{ families: Family[]; stats: ContainerNetworkStats[] }> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const before = await readContainerStats(net);
    const text = await expose();
    const after = await readContainerStats(net);
    if (JSON.stringify(before) === JSON.stringify(after))
      return { families: parseOpenMetrics(text), stats: after };
  }
  throw new Error('the counters never stood still');
}

function expectCountersEqual(families: Family[], stats: ContainerNetworkStats[]): void {
  expect(stats.length).toBeGreaterThan(0);
  for (const c of stats) {
    for (const i of c.interfaces) {
      for (const counter of networkCounters) {
        const labels = { id: c.id, name: c.name, interface: i.name };
        expect(sampleValue(families, `${counter.family}_total`, labels), counter.family).toBe(
          i.stats[counter.field],
        );
      }
    }
  }
  // Nothing but those series: one per container, interface and counter.
  const series = families
    .filter((f) => f.name.startsWith('container_network_'))
    .flatMap((f) => f.samples);
  expect(series).toHaveLength(8 * stats.reduce((n, c) => n + c.interfaces.length, 0));
}

/** The environments the fake plugin recorded, by command. */
function recorded(dir: string, command: string): Record<string, string>[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(`${command}-`))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, string>);
}

const PLUGINS = ['bridge', 'portmap', 'tuning', 'fake-record-env'];

describe.skipIf(!isRoot)('podnet/metrics on real containers', () => {
  const envs = netEnvPerTest();
  let recordDir: string | undefined;
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
    if (recordDir) rmSync(recordDir, { recursive: true, force: true });
    recordDir = undefined;
  });
  const recordingEnv = () => {
    recordDir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    return envs.use(1, { failAt: [0, 3], plugin: 'fake-record-env', pluginConfig: { recordDir } });
  };

  it('exposes counters equal to the stats, and histograms that count setups, teardowns and plugin execs', async () => {
    const env = await recordingEnv();
    const net = env.net();
    const metrics = new PodnetMetrics({ networking: net });
    cleanups.push(() => metrics.close());
    const a = await net.setup({ id: 'metrics-a', name: 'web "one"' });
    const b = await net.setup({ id: 'metrics-b', name: 'db' });
    await traffic(a);
    const { families, stats } = await steadyExposition(net, () => metrics.openMetrics());
    expect(stats.map((s) => s.id)).toEqual(['metrics-a', 'metrics-b']);
    expect(stats[0]!.interfaces[0]!.stats.rxPackets).toBeGreaterThanOrEqual(5);
    expectCountersEqual(families, stats);
    expect(sampleValue(families, 'podnet_setup_duration_seconds_count', { outcome: 'ok' })).toBe(2);
    for (const plugin of PLUGINS) {
      const labels = { plugin, command: 'ADD', outcome: 'ok' };
      expect(sampleValue(families, 'podnet_plugin_exec_duration_seconds_count', labels)).toBe(2);
    }
    await a.teardown();
    await b.teardown();
    const after = parseOpenMetrics(await metrics.openMetrics());
    expect(sampleValue(after, 'podnet_teardown_duration_seconds_count', { outcome: 'ok' })).toBe(2);
    const del = { plugin: 'bridge', command: 'DEL', outcome: 'ok' };
    expect(sampleValue(after, 'podnet_plugin_exec_duration_seconds_count', del)).toBe(2);
    // Torn down: no series left for them.
    expect(
      after.filter((f) => f.name.startsWith('container_network_')).flatMap((f) => f.samples),
    ).toEqual([]);
  });

  it('passes the traceparent of the setup options to every plugin as TRACEPARENT, and none without a trace', async () => {
    const env = await recordingEnv();
    const net = env.net();
    const traced = await net.setup({
      id: 'trace-a',
      name: 't',
      traceparent: TRACEPARENT,
      tracestate: 'congo=t61rcWkgMzE',
    });
    const plain = await net.setup({ id: 'trace-b', name: 't' });
    const adds = (id: string) =>
      recorded(recordDir!, 'ADD').filter((e) => e['CNI_CONTAINERID'] === id);
    expect(adds('trace-a')).toEqual([
      expect.objectContaining({ TRACEPARENT, TRACESTATE: 'congo=t61rcWkgMzE', CNI_COMMAND: 'ADD' }),
    ]);
    expect(adds('trace-b')).toHaveLength(1);
    expect(adds('trace-b')[0]).not.toHaveProperty('TRACEPARENT');
    await traced.teardown();
    await plain.teardown();
    expect(
      await net
        .setup({ id: 'trace-bad', name: 't', traceparent: '00-zz-yy-01' })
        .catch((e: unknown) => e),
    ).toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
    expect(await net.list()).toEqual([]);
  });

  it('the tracing channels see start and end of a setup and of each plugin exec; a subscriber gives a plugin and a teardown its own span', async () => {
    const env = await recordingEnv();
    const net = env.net();
    const events: string[] = [];
    const subscribe = (name: string, onStart?: (c: Record<string, unknown>) => void) => {
      const ch = diagnosticsChannel.tracingChannel<unknown, Record<string, unknown>>(name);
      const label = (c: Record<string, unknown>) =>
        name === 'podnet:cni:exec' ? `${c['command']} ${c['plugin']}` : String(c['id']);
      const handlers = {
        start: (c: Record<string, unknown>) => {
          events.push(`${name} start ${label(c)}`);
          onStart?.(c);
        },
        end: () => {},
        asyncStart: () => {},
        asyncEnd: (c: Record<string, unknown>) => events.push(`${name} asyncEnd ${label(c)}`),
        error: (c: Record<string, unknown>) => events.push(`${name} error ${label(c)}`),
      };
      ch.subscribe(handlers);
      cleanups.push(() => ch.unsubscribe(handlers));
    };
    subscribe('podnet:network:setup');
    subscribe('podnet:network:teardown', (c) => {
      c['traceparent'] = TEARDOWN_SPAN;
    });
    subscribe('podnet:cni:exec', (c) => {
      // Untraced setup: an instrumentation starts a span for this plugin only.
      if (c['plugin'] === 'fake-record-env' && c['command'] === 'ADD')
        c['traceparent'] = PLUGIN_SPAN;
    });
    const a = await net.setup({ id: 'chan-a', name: 'c' });
    expect(events).toEqual([
      'podnet:network:setup start chan-a',
      ...PLUGINS.flatMap((p) => [
        `podnet:cni:exec start ADD ${p}`,
        `podnet:cni:exec asyncEnd ADD ${p}`,
      ]),
      'podnet:network:setup asyncEnd chan-a',
    ]);
    expect(recorded(recordDir!, 'ADD')[0]?.['TRACEPARENT']).toBe(PLUGIN_SPAN);
    events.length = 0;
    await a.teardown();
    expect(events[0]).toBe('podnet:network:teardown start chan-a');
    expect(events.at(-1)).toBe('podnet:network:teardown asyncEnd chan-a');
    expect(events).toContain('podnet:cni:exec start DEL bridge');
    // DEL runs in the teardown's trace, which the subscriber gave it.
    const [del] = recorded(recordDir!, 'DEL');
    expect(del?.['TRACEPARENT']).toBe(TEARDOWN_SPAN);
  });

  it('a failed setup: error events on the failing plugin exec and on the setup', async () => {
    const env = await envs.use(1, { failAt: [0, 1] });
    const net = env.net();
    const metrics = new PodnetMetrics({ networking: net });
    cleanups.push(() => metrics.close());
    const errors: { name: string; code: unknown; what: string }[] = [];
    for (const name of ['podnet:network:setup', 'podnet:cni:exec']) {
      const ch = diagnosticsChannel.tracingChannel<unknown, Record<string, unknown>>(name);
      const handlers = {
        start: () => {},
        end: () => {},
        asyncStart: () => {},
        asyncEnd: () => {},
        error: (c: Record<string, unknown>) =>
          errors.push({
            name,
            code: (c['error'] as { code?: unknown }).code,
            what: String(c['plugin'] ?? c['id']),
          }),
      };
      ch.subscribe(handlers);
      cleanups.push(() => ch.unsubscribe(handlers));
    }
    await expect(net.setup({ id: 'fails', name: 'f' })).rejects.toMatchObject({
      code: 'ERR_PODNET_CNI_PLUGIN',
    });
    expect(errors).toEqual([
      { name: 'podnet:cni:exec', code: 'ERR_PODNET_CNI_PLUGIN', what: 'fake-fail-add' },
      { name: 'podnet:network:setup', code: 'ERR_PODNET_CNI_PLUGIN', what: 'fails' },
    ]);
    const families = parseOpenMetrics(await metrics.openMetrics());
    expect(sampleValue(families, 'podnet_setup_duration_seconds_count', { outcome: 'error' })).toBe(
      1,
    );
    const failed = { plugin: 'fake-fail-add', command: 'ADD', outcome: 'error' };
    expect(sampleValue(families, 'podnet_plugin_exec_duration_seconds_count', failed)).toBe(1);
  });

  it("plugs into prom-client's registry: its OpenMetrics output parses strictly, with the same counters", async () => {
    const env = await recordingEnv();
    const net = env.net();
    const metrics = new PodnetMetrics({ networking: net });
    cleanups.push(() => metrics.close());
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const unregister = await registerPromClient(metrics, { registry });
    const a = await net.setup({ id: 'prom-a', name: 'p' });
    await traffic(a);
    const { families, stats } = await steadyExposition(net, () => registry.metrics());
    expectCountersEqual(families, stats);
    expect(sampleValue(families, 'podnet_setup_duration_seconds_count', { outcome: 'ok' })).toBe(1);
    unregister();
    expect(await registry.metrics()).toBe('\n# EOF\n');
    await a.teardown();
  });

  it('watchStats yields counters at once, rates from the second frame, and ends on abort', async () => {
    const env = await recordingEnv();
    const net = env.net();
    const a = await net.setup({ id: 'watch-a', name: 'w' });
    const stop = new AbortController();
    const frames: StatsFrame[] = [];
    for await (const frame of a.watchStats({ interval: 200, signal: stop.signal })) {
      frames.push(frame);
      await traffic(a, 3);
      if (frames.length === 3) stop.abort();
    }
    expect(frames).toHaveLength(3);
    const eth0 = (f: StatsFrame) => f.interfaces.find((i) => i.name === 'eth0')!;
    expect(eth0(frames[0]!).rxBytesPerSec).toBeUndefined();
    expect(frames[0]!.seconds).toBeUndefined();
    expect(frames[1]!.seconds).toBeGreaterThanOrEqual(0.19);
    expect(eth0(frames[1]!).rxBytesPerSec).toBeGreaterThan(0);
    expect(eth0(frames[2]!).stats.rxPackets).toBeGreaterThan(eth0(frames[1]!).stats.rxPackets);
    // An abort during the wait ends the stream at once, not an interval later.
    const slow = new AbortController();
    const it = a.watchStats({ interval: 60_000, signal: slow.signal });
    expect((await it.next()).done).toBe(false);
    const started = Date.now();
    setTimeout(() => slow.abort(), 50);
    expect((await it.next()).done).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(a.watchStats({ interval: 0 }).next()).rejects.toMatchObject({
      code: 'ERR_PODNET_INVALID_ARGUMENT',
    });
    await a.teardown();
  });

  it('podnet up continues the trace of a TRACEPARENT in its environment into the plugins', async () => {
    const env = await recordingEnv();
    const bin = new URL('../../../bin/podnet.js', import.meta.url).pathname;
    const dirs = [
      '--state-dir',
      env.stateDir,
      '--netns-dir',
      env.netnsDir,
      '--cni-config-dir',
      env.confDir,
      '--cni-cache-dir',
      env.cacheDir,
      ...env.options.pluginDirs.flatMap((d) => ['--cni-plugin-dir', d]),
    ];
    const podnet = (args: string[], extra: Record<string, string> = {}) =>
      promisify(execFile)(process.execPath, [bin, ...args, ...dirs], {
        env: { ...process.env, ...extra },
      });
    await podnet(['up', 'cli-trace', '--network', env.networks[0]!.name, '--json'], {
      TRACEPARENT,
    });
    await podnet(['down', 'cli-trace']);
    expect(recorded(recordDir!, 'ADD').map((e) => e['TRACEPARENT'])).toEqual([TRACEPARENT]);
    // down has no trace in its environment: its DEL has none.
    expect(recorded(recordDir!, 'DEL').map((e) => e['TRACEPARENT'])).toEqual([undefined]);
  });

  it('podnet stats --format openmetrics prints the same counters, strictly parseable', async () => {
    const env = await recordingEnv();
    const net = env.net();
    const a = await net.setup({ id: 'cli-om', name: 'cli' });
    await traffic(a);
    const bin = new URL('../../../bin/podnet.js', import.meta.url).pathname;
    const { families, stats } = await steadyExposition(net, () =>
      run([process.execPath, bin, 'stats', '--format', 'openmetrics', '--state-dir', env.stateDir]),
    );
    expectCountersEqual(families, stats);
    await a.teardown();
  });
});
