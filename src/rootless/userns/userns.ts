// A user namespace with a network namespace of its own, for an unprivileged
// user: what rootless podman's pause process holds.
//
// Node cannot make one itself: unshare(CLONE_NEWUSER) fails in a
// multithreaded process, and an unprivileged process may not setns() into
// the network namespace afterwards (that needs CAP_SYS_ADMIN in the initial
// user namespace as well). So a small native helper (podnet-userns, built
// with the addon: native/userns-helper.cc) creates both, or joins existing
// ones, and lives inside them. It holds the namespaces while it lives, is
// the pid slirp4netns and pasta attach to, and opens sockets inside on
// request, handing the fds back over a SOCK_SEQPACKET socket (SCM_RIGHTS).
// A socket keeps the namespace it was opened in, so this process then uses
// them as its own: the kept NETLINK_ROUTE socket for statistics, listening
// and connecting sockets, the port forwarder's sockets.
import { type ChildProcess, spawn } from 'node:child_process';
import { AbortError, PodnetError, type PodnetErrorOptions } from '../../errors.js';
import { native, usernsHelperPath } from '../../native.js';
import { NetworkNamespace, type SocketRequest, type SocketSource } from '../../netns/namespace.js';
import { findExecutable } from '../executable.js';
import { encodeRequest, HELPER_CHANNEL_FD, parseHelperReply } from './protocol.js';

/** How long to wait for the helper to start, and for each of its replies. */
export const DEFAULT_USERNS_TIMEOUT_MS = 10_000;
/** How long close() waits for the helper to exit before SIGKILL. */
const EXIT_GRACE_MS = 2_000;

/** The helper could not be started, or stopped answering. */
export class UserNamespaceError extends PodnetError {
  /** What the helper wrote to stderr, if anything. */
  readonly log: string;

  constructor(message: string, log = '', options: PodnetErrorOptions = {}) {
    const hint = usernsHint(log);
    super(
      'ERR_PODNET_USERNS',
      `${message}${hint ? `: ${hint}` : ''}${log.trim() ? `; it wrote:\n${log.trimEnd()}` : ''}`,
      options,
    );
    this.log = log;
  }
}

/** A hint for the usual reasons an unprivileged user namespace is refused. */
function usernsHint(log: string): string | undefined {
  // The helper says 'unshare failed: Operation not permitted' (or 'No space left
  // on device' when user.max_user_namespaces is 0); a refused join is another matter.
  if (/unshare failed/i.test(log)) {
    return (
      'the kernel refused a user namespace to this user; check `sysctl user.max_user_namespaces` ' +
      '(must be > 0) and, on Ubuntu, kernel.apparmor_restrict_unprivileged_userns'
    );
  }
  return undefined;
}

/** The helper executable opts name, or podnet's own. */
async function helperProgram(opts: UserNamespaceOptions): Promise<string> {
  if (opts.program === undefined) return usernsHelperPath();
  const program = await findExecutable(opts.program);
  if (!program) throw new UserNamespaceError(`'${opts.program}' is not an executable`);
  return program;
}

/** How the helper ended. */
export interface HelperExit {
  /** Its exit code, when it exited. */
  code: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
}

/** Options of {@link UserNamespace.create} and {@link UserNamespace.join}. */
export interface UserNamespaceOptions {
  /**
   * The helper executable: podnet's own (podnet-userns, found beside
   * the addon) unless given; a name without a slash is looked up on PATH.
   */
  program?: string;
  /** Deadline for the helper to start and for each reply (default {@link DEFAULT_USERNS_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Aborts a start in progress (the helper is killed). */
  signal?: AbortSignal;
}

interface Pending {
  req: SocketRequest;
  resolve: (fds: number[]) => void;
  reject: (err: unknown) => void;
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** The SO_PROTOCOL the kernel reports for a socket opened with `req.protocol`. */
function expectedProtocol(req: SocketRequest): number {
  if (req.protocol !== 0 || (req.domain !== AF_INET && req.domain !== AF_INET6))
    return req.protocol;
  if (req.type === SOCK_STREAM) return IPPROTO_TCP;
  if (req.type === SOCK_DGRAM) return IPPROTO_UDP;
  return 0;
}

/**
 * Why the fds of a reply are not what `req` asked for (undefined when they
 * are): exactly `req.count` sockets, each of the requested domain, type and
 * protocol. The helper is another process, so what it sends is checked like
 * any other input: a wrong fd used as a socket of the namespace could be
 * anything this process is then tricked into reading or writing.
 */
export function checkHelperFds(req: SocketRequest, fds: number[]): string | undefined {
  if (fds.length !== req.count)
    return `the helper sent ${fds.length} fds for a request of ${req.count}`;
  const want = [req.domain, req.type, expectedProtocol(req)];
  for (const fd of fds) {
    let got: [number, number, number];
    try {
      got = native.socketInfo(fd);
    } catch {
      return 'the helper sent an fd that is not a socket';
    }
    if (got.some((v, i) => v !== want[i])) {
      return `the helper sent a socket of domain ${got[0]}, type ${got[1]}, protocol ${got[2]} for one of domain ${want[0]}, type ${want[1]}, protocol ${want[2]}`;
    }
  }
  return undefined;
}

// This side of the helper's socket: requests out, replies (with fds) in,
// answered in order.
class HelperChannel implements SocketSource {
  #fd: number | undefined;
  readonly #timeoutMs: number;
  readonly #queue: Pending[] = [];
  #pumping: Promise<void> | undefined;

  constructor(fd: number, timeoutMs: number) {
    this.#fd = fd;
    this.#timeoutMs = timeoutMs;
  }

  openSockets(req: SocketRequest): Promise<number[]> {
    const fd = this.#fd;
    if (fd === undefined)
      return Promise.reject(new UserNamespaceError('the user namespace helper was closed'));
    let message: Buffer;
    try {
      message = encodeRequest(req); // a RangeError here is the caller's bug, not the helper's
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      try {
        native.sendFds(fd, message);
      } catch (err) {
        reject(new UserNamespaceError('the user namespace helper is gone', '', { cause: err }));
        return;
      }
      this.#queue.push({ req, resolve, reject });
      this.#pumping ??= this.#pump().finally(() => {
        this.#pumping = undefined;
      });
    });
  }

  // Reads replies while requests wait for them (so no pool thread is held
  // while the helper is idle), and settles them in order.
  async #pump(): Promise<void> {
    while (this.#queue.length > 0 && this.#fd !== undefined) {
      let msg: { data: Buffer; fds: number[] } | null;
      try {
        msg = await native.recvFds(this.#fd, this.#timeoutMs);
      } catch (err) {
        this.#failAll(new UserNamespaceError('the helper did not answer', '', { cause: err }));
        return;
      }
      if (msg === null) {
        this.#failAll(new UserNamespaceError('the user namespace helper exited'));
        return;
      }
      const waiter = this.#queue.shift()!;
      const reply = parseHelperReply(msg.data);
      const wrong =
        reply === undefined
          ? `the helper sent a reply podnet does not know: ${msg.data.subarray(0, 64).toString('hex')}`
          : reply.ok
            ? checkHelperFds(waiter.req, msg.fds)
            : undefined;
      if (reply?.ok === true && wrong === undefined) {
        waiter.resolve(msg.fds);
        continue;
      }
      for (const fd of msg.fds) native.closeFd(fd);
      if (reply?.ok === false) {
        // Shaped like the addon's errors, so callers turn it into a PodnetSystemError.
        waiter.reject(
          Object.assign(new Error(`${reply.syscall} failed`), {
            errno: reply.errno,
            syscall: reply.syscall,
          }),
        );
      } else waiter.reject(new UserNamespaceError(wrong ?? 'the helper sent no reply'));
    }
  }

  #failAll(err: Error): void {
    for (const waiter of this.#queue.splice(0)) waiter.reject(err);
  }

  get closed(): boolean {
    return this.#fd === undefined;
  }

  // Closing the fd is the helper's signal to exit. A receive in flight still
  // uses it, so that one is let finish first.
  async close(): Promise<void> {
    await this.#pumping;
    if (this.#fd !== undefined) native.closeFd(this.#fd);
    this.#fd = undefined;
    this.#failAll(new UserNamespaceError('the user namespace helper was closed'));
  }
}

/**
 * A user namespace and the network namespace it owns, held by a helper
 * process inside them (see the file comment for why a helper). The
 * namespaces live as long as the helper: `close()` ends it, and it also
 * ends by itself when this process exits, because its only link to the
 * world (the socket it serves requests on) then reaches end of file.
 *
 * `netns` is a NetworkNamespace like any other for this process: netlink
 * reads and writes, `linkStatsSync`, `listen`, `connect`, `socket`. Only the
 * way its sockets are opened differs (by the helper, not by setns).
 *
 * Threads: nothing here enters a namespace; the helper is a process of its
 * own, and this side only sends and receives messages (receiving on the
 * libuv pool, with a deadline).
 */
export class UserNamespace implements AsyncDisposable {
  /** The helper's pid: attach slirp4netns or pasta to it; /proc/PID/ns/{user,net} are the namespaces. */
  readonly pid: number;
  /** The network namespace, with sockets from the helper. */
  readonly netns: NetworkNamespace;
  /** Settles when the helper has exited. */
  readonly exited: Promise<HelperExit>;
  readonly #channel: HelperChannel;
  #closing: Promise<void> | undefined;

  private constructor(
    pid: number,
    channel: HelperChannel,
    netns: NetworkNamespace,
    exited: Promise<HelperExit>,
  ) {
    this.pid = pid;
    this.#channel = channel;
    this.netns = netns;
    this.exited = exited;
  }

  /**
   * Creates a user namespace (this user mapped to root in it) with a new
   * network namespace, held by a new helper. Loopback stays down, as in any
   * new namespace. Throws UserNamespaceError when the kernel refuses.
   */
  static async create(opts: UserNamespaceOptions = {}): Promise<UserNamespace> {
    return UserNamespace.#start(await helperProgram(opts), ['create'], opts);
  }

  /**
   * Starts a second helper in the user and network namespaces of process
   * PID (one this user owns, such as another UserNamespace's helper or a
   * rootless container's process), for another process to reach them: a
   * CLI reading a container's statistics, say.
   */
  static async join(pid: number, opts: UserNamespaceOptions = {}): Promise<UserNamespace> {
    if (!Number.isInteger(pid) || pid <= 0)
      throw new UserNamespaceError(`cannot join pid ${String(pid)}: not a process id`);
    return UserNamespace.#start(await helperProgram(opts), ['join', String(pid)], opts);
  }

  static async #start(
    program: string,
    args: string[],
    opts: UserNamespaceOptions,
  ): Promise<UserNamespace> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_USERNS_TIMEOUT_MS;
    if (opts.signal?.aborted)
      throw new AbortError('starting a user namespace', { cause: opts.signal.reason });
    const [ours, theirs] = native.seqpacketPair();
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
    stdio[HELPER_CHANNEL_FD] = theirs;
    let child: ChildProcess;
    try {
      // Its own process group, so a terminal's ^C reaches the owner only.
      child = spawn(program, args, {
        stdio,
        detached: true,
      });
    } catch (err) {
      native.closeFd(ours);
      throw new UserNamespaceError(`cannot start '${program}'`, '', { cause: err });
    } finally {
      native.closeFd(theirs);
    }
    let log = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (log.length < 8192) log += d;
    });
    const exited = new Promise<HelperExit>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    const kill = (): void => {
      try {
        if (child.pid !== undefined && child.exitCode === null) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    };
    const onAbort = (): void => kill();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let netns: NetworkNamespace | undefined;
    let channel: HelperChannel | undefined;
    try {
      const hello = await native.recvFds(ours, timeoutMs).catch((err: unknown) => {
        throw new UserNamespaceError(
          (err as { errno?: number }).errno === 110
            ? `the helper did not start within ${timeoutMs} ms`
            : 'reading from the helper failed',
          log,
          { cause: err },
        );
      });
      if (opts.signal?.aborted)
        throw new AbortError('starting a user namespace', { cause: opts.signal.reason });
      if (hello !== null) {
        for (const fd of hello.fds) native.closeFd(fd); // the first message carries none
        const ready = parseHelperReply(hello.data);
        // Its own pid: the helper is the child itself, no process in between.
        if (ready?.ok !== true || ready.pid !== child.pid || hello.fds.length > 0)
          throw new UserNamespaceError('the helper did not say it was ready', log);
      }
      if (hello === null || child.pid === undefined) {
        const end = await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
        throw new UserNamespaceError(
          `'${program} ${args.join(' ')}' ended before the helper started${
            end ? ` (${JSON.stringify(end)})` : ''
          }`,
          log,
        );
      }
      channel = new HelperChannel(ours, timeoutMs);
      netns = await NetworkNamespace.openWith(`/proc/${child.pid}/ns/net`, channel);
      child.stderr!.destroy(); // nothing more to learn from it; keeps no handle open
      child.unref();
      return new UserNamespace(child.pid, channel, netns, exited);
    } catch (err) {
      netns?.close();
      if (channel) await channel.close();
      else native.closeFd(ours);
      kill();
      throw err;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Whether close() was called or the helper is gone. */
  get closed(): boolean {
    return this.#channel.closed;
  }

  /**
   * Ends the helper, and with it the namespaces (unless something else, such
   * as slirp4netns or a socket, still holds them). Closes `netns` first.
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.netns.close();
      await this.#channel.close();
      const timer = setTimeout(() => {
        try {
          process.kill(-this.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }, EXIT_GRACE_MS);
      await this.exited;
      clearTimeout(timer);
    })();
    return this.#closing;
  }

  /** Same as close(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
