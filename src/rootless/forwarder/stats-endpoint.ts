// How a forwarder in another process reports its counters: the process that
// runs it (the keeper, or a detached forwarder) answers on an abstract Unix
// socket named after its own pid and start time, so `podnet stats`, a
// separate process, finds it from the helper identity the container's state
// records. Abstract: no file to create or remove, it goes when the process
// does, and it lives in the host's network namespace, where both processes
// run. Read-only: a connection gets one line of JSON (ForwarderStats) and
// the end; nothing is read from it. Whoever shares the namespace may read
// the counters, and the reply is untrusted here, checked against a schema.
import net from 'node:net';
import * as v from 'valibot';
import { type ProcessIdentity, processIdentity } from '../../process.js';
import { ForwarderProcessError } from '../errors.js';
import type { ForwarderStats } from './job.js';

/** The abstract socket name of the process `id` (a NUL first: Linux's abstract namespace). */
export function statsEndpointName(id: ProcessIdentity): string {
  return `\0podnet/forwarder-stats/${id.pid}/${id.startTime}`;
}

/**
 * Answers stats queries for this process with `stats()`; the server does
 * not keep the event loop alive. Resolves once listening.
 */
export function serveForwarderStats(stats: () => ForwarderStats): Promise<net.Server> {
  const server = net.createServer((sock) => {
    sock.on('error', () => undefined);
    sock.end(`${JSON.stringify(stats())}\n`);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(statsEndpointName(processIdentity(process.pid)), () => {
      server.off('error', reject);
      server.unref();
      resolve(server);
    });
  });
}

const Count = v.pipe(v.number(), v.integer(), v.minValue(0));
const Port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const ForwarderStatsSchema = v.strictObject({
  active: Count,
  connections: Count,
  failed: Count,
  dropped: Count,
  bytes: Count,
  flows: Count,
  activeFlows: Count,
  datagrams: Count,
  datagramsDropped: Count,
  ports: v.pipe(
    v.array(
      v.strictObject({
        hostIP: v.pipe(v.string(), v.ip()),
        hostPort: Port,
        containerPort: Port,
        protocol: v.picklist(['tcp', 'udp']),
        connections: Count,
        active: Count,
        rxBytes: Count,
        txBytes: Count,
        rxDatagrams: Count,
        txDatagrams: Count,
      }),
    ),
    v.maxLength(65536),
  ),
});

/** Replies larger than this are refused (65536 ports' counters fit). */
const MAX_REPLY = 16 << 20;

/**
 * The counters of the forwarder that process `id` runs, or undefined when
 * it runs none (nothing listens on its name: no forwarder, or the process
 * is gone). A reply that does not check out, or none within `timeoutMs`,
 * is a ForwarderProcessError (ERR_PODNET_FORWARDER).
 */
export function queryForwarderStats(
  id: ProcessIdentity,
  timeoutMs = 2000,
): Promise<ForwarderStats | undefined> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(statsEndpointName(id));
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (message: string, cause?: unknown): void => {
      sock.destroy();
      reject(
        new ForwarderProcessError('ERR_PODNET_FORWARDER', `stats of pid ${id.pid}: ${message}`, {
          cause,
        }),
      );
    };
    sock.setTimeout(timeoutMs, () => fail(`no reply within ${timeoutMs} ms`));
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(undefined);
      else fail(err.message, err);
    });
    sock.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REPLY) return fail(`reply larger than ${MAX_REPLY} bytes`);
      chunks.push(chunk);
    });
    sock.on('end', () => {
      let raw: unknown;
      try {
        raw = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (err) {
        return fail('reply is not JSON', err);
      }
      const parsed = v.safeParse(ForwarderStatsSchema, raw);
      if (!parsed.success) {
        const issue = parsed.issues[0];
        const where = issue.path?.map((p) => String(p.key)).join('.') ?? '(reply)';
        return fail(`bad reply: ${where}: ${issue.message}`);
      }
      resolve(parsed.output);
    });
  });
}
