// Throughput with N streams: `iperf3 -c TO -p PORT -P N -t BENCH_SECONDS -J`
// against the path's `iperf3 -s`, the figure what the server received
// (end.sum_received). Without iperf3, the Node stream client of
// bench/lib/forward-roles.js: 1 MiB writes for BENCH_SECONDS, half-close, and
// the server answers with the byte count it received.
import { SECONDS } from '../context.js';

const FAILED = { value: Number.NaN, bytes: Number.NaN };

async function iperf(ctx, { from, to, ports }, streams) {
  const port = ports[1];
  const argv = ['iperf3', '-c', to, '-p', String(port), '-P', String(streams)];
  argv.push('-t', String(SECONDS), '-J', '--connect-timeout', '5000');
  const out = await ctx.runInNs(from, argv);
  try {
    const j = JSON.parse(out);
    if (j.error) throw new Error(j.error);
    const r = j.end.sum_received;
    return { value: r.bits_per_second / 1e9, bytes: r.bytes };
  } catch (err) {
    console.error(`bench/forward.js: iperf3 to ${to}:${port} -P ${streams}: ${err.message}`);
    return FAILED;
  }
}

async function nodeClient(ctx, { from, to, ports }, streams) {
  const opts = { host: to, port: ports[0], seconds: SECONDS, mode: 'stream', streams };
  const r = await ctx.runClient(from, opts);
  return r ? { value: r.gbits, bytes: r.bytes } : FAILED;
}

/**
 * The workload of STREAMS concurrent streams (bench/forward.js describes the
 * interface): Gbit/s, and the forwarding processes' CPU per Gbit received.
 */
export function stream(streams) {
  return {
    id: `gbit${streams}`,
    label: streams === 1 ? '1 stream' : `${streams} streams`,
    unit: 'Gbit/s',
    digits: 2,
    cpuId: `cpuSecPerGbit${streams}`,
    run: (ctx, path) =>
      ctx.programs.iperf3 ? iperf(ctx, path, streams) : nodeClient(ctx, path, streams),
  };
}
