// Throughput with N streams: `iperf3 -c TO -p PORT -P N -t BENCH_SECONDS -J`
// against the path's `iperf3 -s`, the figure what the server received
// (end.sum_received), and iperf3's own CPU (client and server processes,
// end.cpu_utilization_percent) per Gbit as `iperfCpuSecPerGbitN` in the JSON
// line: with the forwarder's CPU it is the whole path's, where the
// kernel's forwarding work is charged to the process it runs in. A server
// still busy with the previous test (it ends a test once it has read the
// client's close, which a proxy passes on a moment later) is asked again. Without iperf3, the Node stream client of
// bench/lib/forward-roles.js: 1 MiB writes for BENCH_SECONDS, half-close, and
// the server answers with the byte count it received.
import { SECONDS } from '../context.js';

const FAILED = { value: Number.NaN, bytes: Number.NaN };
/** Tries when iperf3 -s says it is busy, a second apart. */
const BUSY_TRIES = 5;

async function iperf(ctx, { from, to, ports }, streams) {
  const port = ports[1];
  const argv = ['iperf3', '-c', to, '-p', String(port), '-P', String(streams)];
  argv.push('-t', String(SECONDS), '-J', '--connect-timeout', '5000');
  for (let tries = 1; ; tries++) {
    const out = await ctx.runInNs(from, argv);
    try {
      const j = JSON.parse(out);
      if (j.error && /busy/.test(j.error) && tries < BUSY_TRIES) {
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (j.error) throw new Error(j.error);
      const r = j.end.sum_received;
      const gbit = (r.bytes * 8) / 1e9;
      const cpu = j.end.cpu_utilization_percent;
      const iperfCpu = ((cpu.host_total + cpu.remote_total) / 100) * r.seconds;
      return {
        value: r.bits_per_second / 1e9,
        bytes: r.bytes,
        extra: { [`iperfCpuSecPerGbit${streams}`]: iperfCpu / gbit },
      };
    } catch (err) {
      console.error(`bench/forward.js: iperf3 to ${to}:${port} -P ${streams}: ${err.message}`);
      return FAILED;
    }
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
