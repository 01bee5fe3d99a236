// The event-loop side of a namespace's statistics: a NETLINK_ROUTE socket
// (native/rtnl-channel.cc) whose requests and replies never touch the libuv
// pool, and the choice, made once per process, of the request that reads
// a link's counters.
import { ClosedError, PodnetSystemError } from '../errors.js';
import { type NativeRtnlChannel, native } from '../native.js';
import { endsDump, framesOf } from './rtnl-events.js';

const RECV_BUF = 64 * 1024;
const EAGAIN = 11;
const EOPNOTSUPP = -95;
const NLM_F_MULTI = 0x2;

// RTM_GETSTATS (Linux 4.7) reads the counters alone, by index; RTM_GETLINK
// by name is the fallback. Undefined until the first GETSTATS is answered.
let getStatsWorks: boolean | undefined;

/** Whether RTM_GETSTATS is to be used: yes until a kernel said it has none. */
export function useGetStats(): boolean {
  return getStatsWorks !== false;
}

/** Whether RTM_GETSTATS is known to work here (the hot paths take it without asking again). */
export function getStatsKnown(): boolean {
  return getStatsWorks === true;
}

/**
 * Records what the first RTM_GETSTATS got: EOPNOTSUPP (a kernel before 4.7)
 * makes every later read use RTM_GETLINK; anything else settles that it
 * works. Returns whether this result means "no RTM_GETSTATS here".
 */
export function noteGetStats(result: number): boolean {
  if (getStatsWorks !== undefined) return false;
  getStatsWorks = result !== EOPNOTSUPP;
  return !getStatsWorks;
}

interface Pending {
  chunks: Buffer[];
  resolve(reply: Buffer): void;
  reject(err: unknown): void;
}

/**
 * A namespace's socket for asynchronous requests. A reply is read at once
 * when the kernel queued it within the send (as rtnetlink does); the fd is
 * watched by the event loop only while a reply is still to come.
 */
export class StatsChannel {
  /** The native channel (for a sweep, which drives many in one call). */
  readonly native: NativeRtnlChannel;
  readonly #buf = Buffer.allocUnsafe(RECV_BUF);
  readonly #what: string;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  #polling = false;

  /** Owns FD, a NETLINK_ROUTE socket opened inside the namespace at PATH. */
  constructor(fd: number, path: string) {
    this.#what = path;
    this.native = new native.RtnlChannel(fd, this.#buf, (len, errno) => this.#onData(len, errno));
  }

  /** Whether no reply is outstanding (a synchronous read may then use the socket). */
  get idle(): boolean {
    return this.#pending.size === 0;
  }

  /** Writes a fresh sequence number into REQ and returns it. */
  stamp(req: Buffer): number {
    this.#seq = (this.#seq % 0x7fff_ffff) + 1;
    req.writeUInt32LE(this.#seq, 8);
    return this.#seq;
  }

  /**
   * Sends a statistics request (the channel idle) and decodes its counters
   * into OUT when the reply is already there: decodeStats' result, or
   * STATS_PENDING (then {@link reply} with the returned sequence number).
   */
  statsNow(req: Buffer, out: Float64Array): number {
    this.stamp(req);
    return this.native.stats(req, out);
  }

  /** The sequence number of the last request sent. */
  get lastSeq(): number {
    return this.#seq;
  }

  /** The reply (every message) to the request with sequence number SEQ, already sent. */
  reply(seq: number): Promise<Buffer> {
    const p = this.#register(seq);
    this.#poll();
    return p;
  }

  #register(seq: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { chunks: [], resolve, reject });
    });
  }

  /** Sends REQ and resolves to its whole reply, read on the event loop. */
  request(req: Buffer): Promise<Buffer> {
    const seq = this.stamp(req);
    try {
      this.native.send(req);
    } catch (err) {
      return Promise.reject(err);
    }
    const p = this.#register(seq);
    // Usually the reply is there already: take it without a loop turn.
    for (let n = this.native.read(); n !== -EAGAIN; n = this.native.read()) {
      this.#onData(Math.max(n, 0), n < 0 ? -n : 0);
      if (!this.#pending.has(seq)) break;
    }
    this.#poll();
    return p;
  }

  #onData(len: number, errno: number): void {
    if (errno !== 0) {
      this.#rejectAll(
        new PodnetSystemError(`reading netlink replies in '${this.#what}'`, {
          errno,
          syscall: 'recv',
        }),
      );
      return;
    }
    try {
      for (const f of framesOf(this.#buf, len)) {
        const p = this.#pending.get(f.seq);
        if (!p) continue; // a reply nobody waits for any more
        p.chunks.push(Buffer.from(this.#buf.subarray(f.start - 16, f.end)));
        if (endsDump(f) || (f.flags & NLM_F_MULTI) === 0) {
          this.#pending.delete(f.seq);
          p.resolve(Buffer.concat(p.chunks));
        }
      }
    } catch (err) {
      this.#rejectAll(err);
    }
    this.#poll();
  }

  #rejectAll(err: unknown): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(err);
  }

  // Watched, and keeping the process alive, only while a reply is awaited.
  #poll(): void {
    const on = this.#pending.size > 0;
    if (on === this.#polling) return;
    this.#polling = on;
    this.native.poll(on, on);
  }

  /** Closes the socket; waiting requests reject with a ClosedError. */
  close(): void {
    this.native.close();
    this.#rejectAll(new ClosedError(`network namespace '${this.#what}'`));
  }
}
