import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPodnetError, PodnetError, PodnetSystemError } from './errors.js';

/** The NETLINK_ROUTE socket type the addon exports. */
export interface NativeRtnlSocket {
  /** Sends `req`; copies the reply into `resp` and returns its length, or returns a new Buffer if it does not fit. */
  request(req: Buffer, resp?: Buffer): number | Buffer;
  /**
   * Sends an RTM_GETLINK for one link and writes its 25 counters into `out`.
   * Returns how many the kernel sent, a negative errno, or STATS_MALFORMED /
   * STATS_MISSING.
   */
  stats(req: Buffer, out: Float64Array): number;
  /** Same as request, on the libuv pool (the socket already lives in its namespace: no setns). */
  requestAsync(req: Buffer): Promise<Buffer>;
  close(): void;
}

/** The addon's functions (native/*.cc). Arguments are validated in TypeScript before these are called. */
export interface NativeBinding {
  createNetns(dir: string, path: string): Promise<number>;
  bindNetns(dir: string, src: string, path: string): Promise<number>;
  /** Resolves to the fd, or -1 (not nsfs) or -2 (another namespace type). */
  openNetns(path: string): Promise<number>;
  removeNetns(path: string): Promise<number>;
  socketIn(
    nsfd: number,
    domain: number,
    type: number,
    protocol: number,
    addr?: Buffer,
  ): Promise<number>;
  /** COUNT sockets opened inside the namespace on one fresh thread (all or none). */
  socketsIn(
    nsfd: number,
    domain: number,
    type: number,
    protocol: number,
    count: number,
  ): Promise<number[]>;
  socketInSync(nsfd: number, domain: number, type: number, protocol: number, addr?: Buffer): number;
  closeFd(fd: number): void;
  /**
   * Opens (creating, never through a symlink) a lock file and takes an
   * exclusive flock without blocking: the fd, or a thrown EWOULDBLOCK when
   * another holder has it. Closing the fd releases the lock.
   */
  tryLockFile(path: string): number;
  RtnlSocket: new (fd: number) => NativeRtnlSocket;
  /** The stats fast path's C++ decoder over captured bytes (for tests). */
  decodeStats(buf: Buffer, len: number, out: Float64Array): number;
  STATS_MALFORMED: number;
  STATS_MISSING: number;
  /**
   * A new relay group (one per port forwarder); starts the relay threads on
   * first use (one per available core, at most 8; PODNET_RELAY_THREADS,
   * 1 to 64, read then, overrides). `onRefill(kind, left)` is called when one of the group's
   * socket pools is at or below its low-water mark (once until
   * relayPoolAdd or relayPoolFailed answers); while the group is open it
   * keeps the event loop alive, as a listening server does.
   */
  relayGroup(onRefill?: (kind: number, left: number) => void): number;
  /**
   * Hands two connected stream sockets to the native relay, which owns them
   * from then on (it closes them on error too). With `addr` (a raw
   * sockaddr), `fdB` is first connected to it without blocking. Returns the
   * pair's id.
   */
  relayStart(group: number, fdA: number, fdB: number, addr?: Buffer, flags?: number): number;
  /**
   * Hands a listening TCP socket to the relay, which owns it from then on:
   * each client it accepts is paired with a socket of the group's TCP pool,
   * connected to `addr` (a raw sockaddr).
   */
  relayListen(group: number, fd: number, addr: Buffer): void;
  /**
   * Hands a bound host UDP socket to the relay, which owns it from then on:
   * each client address gets a socket of the group's UDP pool connected to
   * `addr`, closed after `idleMs` without a datagram; at `maxFlows` the
   * least recently used flow makes room.
   */
  relayUdp(group: number, fd: number, addr: Buffer, idleMs: number, maxFlows: number): void;
  /**
   * Adds sockets to one of the group's pools (POOL_TCP, POOL_UDP), which
   * owns them from then on, answering its refill request. False (and the
   * fds closed) when the group is closed.
   */
  relayPoolAdd(group: number, kind: number, fds: number[]): boolean;
  /** Sets the pool size at or below which the group asks for a refill. */
  relayPoolLow(group: number, kind: number, low: number): void;
  /** Clears a refill request that could not be met, and lets waiting listeners ask again. */
  relayPoolFailed(group: number, kind: number): void;
  /**
   * Resets and closes every pair of a group and forgets it; returns its
   * final counters once they are closed (undefined for an unknown group).
   */
  relayCloseGroup(group: number): RelayStats | undefined;
  /** Counters of a group (undefined once closed), or of the whole process without one. */
  relayStats(group?: number): RelayStats | undefined;
  /**
   * The bulk streams (pairs whose pipe grew) each relay thread relays now,
   * including those on their way to it, one entry per thread; empty
   * before the first relayGroup.
   */
  relayThreads(): number[];
  /**
   * A socket bound to `addr` (a raw sockaddr) in this process's namespace,
   * listening when `type` is SOCK_STREAM (IPv6 ones IPv6-only): [fd, port].
   */
  hostSocket(addr: Buffer, type: number): [number, number];
  /** fcntl(F_DUPFD_CLOEXEC): a second fd for the same socket. */
  dupFd(fd: number): number;
  /** relayStart flag: read/write through a buffer instead of splice (benchmarks, tests). */
  RELAY_FORCE_COPY: number;
  /** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC). */
  seqpacketPair(): [number, number];
  /** One message with `fds` attached (SCM_RIGHTS), synchronously; the fds stay open here. */
  sendFds(sock: number, data: Buffer, fds?: number[]): void;
  /** One message on the libuv pool, or null at end of stream; timeoutMs -1 waits forever. */
  recvFds(sock: number, timeoutMs: number): Promise<{ data: Buffer; fds: number[] } | null>;
  /** COUNT sockets (O_CLOEXEC) in the caller's own namespace, bound to `addr` if given. */
  socketsHere(
    domain: number,
    type: number,
    protocol: number,
    count: number,
    addr?: Buffer,
  ): number[];
  /**
   * [domain, type, protocol] of a socket (SO_DOMAIN, SO_TYPE, SO_PROTOCOL),
   * for checking fds another process sent; throws (ENOTSOCK) for a non-socket.
   */
  socketInfo(fd: number): [number, number, number];
  /** The pool of TCP sockets (relayPoolAdd's kind). */
  POOL_TCP: number;
  /** The pool of UDP sockets (relayPoolAdd's kind). */
  POOL_UDP: number;
}

/** Counters of the native relay, for one forwarder or the whole process. */
export interface RelayStats {
  /** Pairs being relayed now (including those still connecting). */
  active: number;
  /** Pairs ever started. */
  pairs: number;
  /** Pairs that ended with an error (connect failed, reset, or closed by the forwarder). */
  failed: number;
  /** Bytes written, both directions together (UDP payloads included). */
  bytes: number;
  /** Clients accepted but refused before relaying (no pipe could be made). */
  dropped: number;
  /** UDP flows ever made. */
  flows: number;
  /** UDP flows open now. */
  activeFlows: number;
  /** UDP datagrams relayed, both directions. */
  datagrams: number;
  /** UDP datagrams dropped (no flow socket, a full buffer, or truncated). */
  datagramsDropped: number;
}

const require = createRequire(import.meta.url);

/** The package directory: node-gyp-build looks in its build/Release, then its prebuilds/. */
const packageDir = dirname(fileURLToPath(new URL('../package.json', import.meta.url)));

let binding: NativeBinding | undefined;

function load(): NativeBinding {
  if (binding) return binding;
  // PODNET_ADDON_PATH names another build of the addon (a .node file) to load
  // instead: the sanitizer build of scripts/build-sanitized.js, which the
  // sanitizer tests run the native unit tests against. Not for production use.
  const override = process.env['PODNET_ADDON_PATH'];
  try {
    const loadBinding = require('node-gyp-build') as (dir: string) => NativeBinding;
    binding = override ? (require(override) as NativeBinding) : loadBinding(packageDir);
  } catch (err) {
    throw new PodnetError('ERR_PODNET_NO_ADDON', noAddonMessage(override, err), { cause: err });
  }
  return binding;
}

/**
 * One line: what this machine needed (the prebuild directory and tags
 * node-gyp-build matches on), what the package has, why loading failed when
 * a build was found, and how to build one.
 */
function noAddonMessage(override: string | undefined, err: unknown): string {
  // glibc's version is in the report's header; musl has none to report.
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  const libc = report.header?.glibcVersionRuntime ? 'glibc' : 'musl';
  const wanted =
    `${process.platform}-${process.arch} ${libc}, Node ${process.versions.node} ` +
    `(ABI ${process.versions.modules}, N-API ${process.versions.napi})`;
  const detail = String((err as Error)?.message ?? err).split('\n')[0] ?? '';
  if (override) return `cannot load the podnet addon PODNET_ADDON_PATH names: ${detail}`;
  // Where node-gyp-build looked: PODNET_PREBUILD (its own override) or the package.
  const dir = process.env['PODNET_PREBUILD'] ?? packageDir;
  const shipped = listDir(join(dir, 'prebuilds')).flatMap((tuple) =>
    listDir(join(dir, 'prebuilds', tuple)).map((file) => `${tuple}/${file}`),
  );
  const why = detail.startsWith('No native build was found')
    ? `no prebuild for ${wanted}, the package has ${shipped.length ? shipped.join(', ') : 'none'}`
    : `the build found for ${wanted} does not load: ${detail}`;
  return (
    `podnet's native addon is not available: ${why}; build it with python3, make and a C++17 ` +
    `compiler: cd ${packageDir} && npx node-gyp rebuild`
  );
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return []; // no prebuilds/ at all, as in a git checkout
  }
}

/**
 * The addon, loaded on first use: build/Release when built locally, else
 * the prebuild shipped in prebuilds/ (or the file PODNET_ADDON_PATH names).
 * Importing podnet never loads it, so the CLI's help and the pure functions
 * (parsers, inspect builders) work on a machine with no build for it; the
 * first property read throws ERR_PODNET_NO_ADDON there, a one-line
 * PodnetError naming the missing build and how to make one. A Proxy, so
 * every caller's `native.fn(...)` stays as written; a read costs about 20 ns
 * more than a plain property, against microseconds for any call it leads to.
 */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get: (_target, key) => Reflect.get(load(), key),
});

interface RawNativeError {
  errno?: unknown;
  syscall?: unknown;
  path?: unknown;
}

/**
 * Turns an error thrown by the addon (errno, syscall, path) into a
 * PodnetSystemError whose message says what was being done.
 */
export function systemError(what: string, err: unknown): unknown {
  if (isPodnetError(err)) return err;
  const raw = err as RawNativeError;
  if (typeof raw?.errno !== 'number' || typeof raw.syscall !== 'string') return err;
  return new PodnetSystemError(
    what,
    {
      errno: raw.errno,
      syscall: raw.syscall,
      ...(typeof raw.path === 'string' ? { path: raw.path } : {}),
    },
    { cause: err },
  );
}

/** Awaits a native call, rewriting its error with `what` as context. */
export async function call<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    throw systemError(what, err);
  }
}
