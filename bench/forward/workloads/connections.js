// Short connections/s: a Node client process (bench/lib/forward-roles.js)
// runs CONCURRENCY loops of connect, send one byte, read 100 bytes to EOF
// (the server closes first), for BENCH_SECONDS, to the path's first port.
import { SECONDS } from '../context.js';

/** Concurrent connect loops of the client. */
export const CONCURRENCY = 16;

/** The workload (bench/forward.js describes the interface); `failed` counts connections that did not get 100 bytes. */
export default {
  id: 'connsPerSec',
  label: 'conns/s',
  unit: '',
  digits: 0,
  async run(ctx, { from, to, ports }) {
    const r = await ctx.runClient(from, {
      host: to,
      port: ports[0],
      seconds: SECONDS,
      mode: 'conns',
      concurrency: CONCURRENCY,
    });
    return r
      ? { value: r.connsPerSec, extra: { failed: r.failed } }
      : { value: Number.NaN, extra: { failed: Number.NaN } };
  },
};
