// ns.watch(): the rtnetlink multicast groups of a namespace as an async
// iterator of typed events. The socket is opened inside the namespace (on a
// thread of its own, or by the helper of an unprivileged namespace) and then
// read on the event loop (native/rtnl-channel.cc); the codec is
// rtnl-events.ts.
import { AbortError, InvalidArgumentError, PodnetSystemError } from '../errors.js';
import { type NativeRtnlChannel, native, systemError } from '../native.js';
import {
  encodeDump,
  endsDump,
  errorOf,
  eventOf,
  framesOf,
  interrupted,
  kindOf,
  type NetlinkEvent,
  type WatchKind,
  watchGroups,
} from './rtnl-events.js';

/** Options of `ns.watch()`. With none of the four kinds set, every kind is watched. */
export interface WatchOptions {
  /** Links: added, changed (flags, MTU, name, ...), removed. */
  links?: boolean;
  /** IPv4 and IPv6 addresses. */
  addresses?: boolean;
  /** IPv4 and IPv6 routes, of every table. */
  routes?: boolean;
  /** ARP and NDP neighbour entries. */
  neighbors?: boolean;
  /**
   * First list what exists (links, addresses, routes, neighbours, as
   * `-added` events, then `synced`), then the live events. The socket joins
   * its groups before the listing is asked for, so no change falls between.
   */
  listExisting?: boolean;
  /** Ends the watch: the pending and next `next()` reject with an AbortError; the socket is closed. */
  signal?: AbortSignal;
  /**
   * The socket's receive buffer in bytes (SO_RCVBUFFORCE where allowed,
   * else SO_RCVBUF, capped by net.core.rmem_max). A bigger one overflows
   * (and resyncs) less often under bursts of changes.
   */
  receiveBufferBytes?: number;
}

const KINDS: readonly WatchKind[] = ['links', 'addresses', 'routes', 'neighbors'];
// One datagram: the kernel's dump parts are at most 32 KiB, events smaller.
const RECV_BUF = 64 * 1024;
// Events queued and not yet taken before the socket is no longer read: the
// kernel's buffer then fills, and an overflow becomes a resync, so a slow
// consumer costs a listing, never unbounded memory.
const HIGH_WATER = 1024;
const EAGAIN = 11;
const ENOBUFS = 105;
// Datagrams a resync throws away at most before it lists (what was queued:
// the listing supersedes it).
const DISCARD_LIMIT = 4096;

interface Waiter {
  resolve(r: IteratorResult<NetlinkEvent>): void;
  reject(err: unknown): void;
}

/**
 * The events of one namespace, as `ns.watch()` returns them: an async
 * iterator (for `for await`), which ends, and closes its socket, on `break`,
 * `return()`, `close()`, dispose, or its signal. `ready` resolves once the
 * socket has joined its groups: a change made after that is seen.
 */
export class NetlinkWatch implements AsyncIterableIterator<NetlinkEvent>, AsyncDisposable {
  /** Resolves once the socket is open inside the namespace and subscribed (rejects as `next()` would). */
  readonly ready: Promise<void>;
  readonly #what: string;
  readonly #kinds: readonly WatchKind[];
  readonly #signal: AbortSignal | undefined;
  readonly #buf = Buffer.allocUnsafe(RECV_BUF);
  #chan: NativeRtnlChannel | undefined;
  #port = 0;
  #seq = 0;
  // The sequence number of the dump in progress, -1 when none is.
  #dumpSeq = -1;
  #stages: WatchKind[] = [];
  // Events were lost (or a dump was interrupted): list again once the
  // current listing, if any, has ended.
  #relist = false;
  #pollState = '';
  readonly #queue: NetlinkEvent[] = [];
  readonly #waiters: Waiter[] = [];
  // The failure next() is still to report (once), and the one that ended the watch.
  #failure: { err: unknown } | undefined;
  #ended: { err: unknown } | undefined;
  #closed = false;
  readonly #onClose: () => void;
  readonly #onAbort = (): void => {
    this.#queue.length = 0;
    this.#fail(new AbortError(this.#what, { cause: this.#signal?.reason }));
  };

  /**
   * Use `ns.watch()`; `open` resolves to a NETLINK_ROUTE socket opened
   * inside the namespace, `onClose` runs once when the watch ends.
   */
  constructor(
    open: () => Promise<number>,
    what: string,
    opts: WatchOptions = {},
    onClose: () => void = () => undefined,
  ) {
    this.#what = what;
    this.#onClose = onClose;
    const chosen = KINDS.filter((k) => opts[k] === true);
    this.#kinds = chosen.length ? chosen : KINDS;
    const rcvbuf = opts.receiveBufferBytes;
    if (rcvbuf !== undefined && (!Number.isInteger(rcvbuf) || rcvbuf < 1 || rcvbuf > 2 ** 30)) {
      throw new InvalidArgumentError(
        `receiveBufferBytes must be an integer from 1 to 2^30, not ${String(rcvbuf)}`,
      );
    }
    this.#signal = opts.signal;
    this.ready = this.#open(open, opts.listExisting === true, rcvbuf);
    // Whoever never awaits `ready` still gets the failure from next().
    this.ready.catch(() => undefined);
    if (this.#signal?.aborted) this.#onAbort();
    else this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  async #open(open: () => Promise<number>, list: boolean, rcvbuf?: number): Promise<void> {
    try {
      const fd = await open();
      if (this.#closed) {
        native.closeFd(fd);
        if (this.#ended) throw this.#ended.err;
        return;
      }
      this.#chan = new native.RtnlChannel(fd, this.#buf, (len, errno) => this.#onData(len, errno));
      if (rcvbuf !== undefined) this.#chan.receiveBuffer(rcvbuf);
      for (const kind of this.#kinds) for (const group of watchGroups[kind]) this.#chan.join(group);
      this.#port = this.#chan.portId();
      if (list) this.#list(false);
      this.#updatePoll();
    } catch (err) {
      const e = systemError(this.#what, err);
      this.#fail(e);
      throw e;
    }
  }

  /** Called by the channel for each datagram read (or a failed read) on the event loop. */
  #onData(len: number, errno: number): void {
    try {
      if (errno === ENOBUFS) this.#relist = true;
      else if (errno !== 0) throw new PodnetSystemError(this.#what, { errno, syscall: 'recv' });
      else this.#frames(len);
      // After the datagram's frames, whose bytes a discard would overwrite.
      if (this.#relist && this.#dumpSeq < 0 && !this.#closed) this.#list(true);
    } catch (err) {
      this.#fail(systemError(this.#what, err));
    }
    this.#updatePoll();
  }

  #frames(len: number): void {
    const buf = this.#buf;
    for (const f of framesOf(buf, len)) {
      if (f.pid !== this.#port) {
        // An event (nlmsg_pid names whoever caused it: never this socket,
        // which only asks for dumps).
        const kind = kindOf(f.type);
        if (kind && this.#kinds.includes(kind)) this.#emit(eventOf(buf, f, false));
      } else if (f.seq === this.#dumpSeq) {
        if (interrupted(f)) this.#relist = true;
        if (endsDump(f)) {
          const code = errorOf(buf, f);
          if (code < 0) {
            throw new PodnetSystemError(`${this.#what}: listing ${this.#stages[0] ?? ''}`, {
              errno: code,
              syscall: 'netlink',
            });
          }
          this.#nextStage();
        } else {
          this.#emit(eventOf(buf, f, true));
        }
      }
      // Anything else answered an earlier request of this socket: none is pending.
    }
  }

  // Lists every kind, one dump at a time (a socket runs one dump at once).
  // A resync first throws away what is queued: the listing supersedes it.
  #list(resync: boolean): void {
    if (resync) {
      for (let i = 0; i < DISCARD_LIMIT; i++) if (this.#chan!.read() === -EAGAIN) break;
      this.#emit({ type: 'resync' });
    }
    this.#relist = false;
    this.#stages = [...this.#kinds];
    this.#nextStage(true);
  }

  #nextStage(first = false): void {
    if (!first) this.#stages.shift();
    const kind = this.#stages[0];
    if (kind === undefined) {
      this.#dumpSeq = -1;
      // A listing that lost events is followed by another at once.
      if (!this.#relist) this.#emit({ type: 'synced' });
      return;
    }
    this.#seq = (this.#seq % 0x7fff_ffff) + 1;
    this.#dumpSeq = this.#seq;
    this.#chan!.send(encodeDump(kind, this.#dumpSeq));
  }

  #emit(ev: NetlinkEvent | undefined): void {
    if (ev === undefined || this.#closed) return;
    const w = this.#waiters.shift();
    if (w) w.resolve({ value: ev, done: false });
    else this.#queue.push(ev);
  }

  // The fd is read while fewer than HIGH_WATER events wait, and keeps the
  // process alive only while someone waits for one.
  #updatePoll(): void {
    if (!this.#chan || this.#closed) return;
    const on = this.#queue.length < HIGH_WATER;
    const ref = this.#waiters.length > 0;
    const state = `${on}${ref}`;
    if (state === this.#pollState) return;
    this.#pollState = state;
    this.#chan.poll(on, ref);
  }

  #fail(err: unknown): void {
    if (this.#closed) return;
    this.#failure = { err };
    this.#ended = { err };
    const waiter = this.#waiters.shift();
    this.#shut();
    if (waiter) {
      this.#failure = undefined;
      waiter.reject(err);
    }
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  #shut(): void {
    this.#closed = true;
    this.#onClose();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#chan?.close();
    this.#chan = undefined;
  }

  /** Whether the watch has ended (its socket is closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** The next event; after a failure, rejects once with it, then is done. */
  next(): Promise<IteratorResult<NetlinkEvent>> {
    const value = this.#queue.shift();
    if (value !== undefined) {
      this.#updatePoll();
      return Promise.resolve({ value, done: false });
    }
    if (this.#failure) {
      const { err } = this.#failure;
      this.#failure = undefined;
      return Promise.reject(err);
    }
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#updatePoll();
    });
  }

  /** Ends the watch (what `break` out of `for await` calls). */
  return(): Promise<IteratorResult<NetlinkEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Closes the socket; queued events are dropped and waiting `next()` calls end. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#shut();
    this.#queue.length = 0;
    this.#failure = undefined;
    for (const w of this.#waiters.splice(0)) w.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Same as {@link close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
