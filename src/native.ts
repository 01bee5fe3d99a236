import { accessSync, constants, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isPodnetError, NotANamespaceError, PodnetError, PodnetSystemError } from './errors.js';

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
  /**
   * A function that does the same for an RTM_GETSTATS of link INDEX built
   * natively, into the Float64Array given to the constructor (a negative
   * errno, EINVAL, if none was). It keeps the socket alive.
   */
  statsReader(): (index: number) => number;
  /** Same as request, on the libuv pool (the socket already lives in its namespace: no setns). */
  requestAsync(req: Buffer): Promise<Buffer>;
  close(): void;
}

/** The NETLINK_NETFILTER socket type the addon exports (native/nfnetlink.cc). */
export interface NativeNfnlSocket {
  /**
   * Numbers every message of BATCH (NFNL_MSG_BATCH_BEGIN ... END), sends it
   * in one sendmsg and reads the kernel's answers: null when every message
   * that asked for an ack got one and none was refused, else the first
   * refused one as [index, errno] (errno 0: it asked for an ack and got no
   * answer). Synchronous: the kernel has handled the batch when sendmsg returns.
   */
  batch(batch: Buffer): [number, number] | null;
  /** One message outside a batch, answered the same way ([0, errno] or null); data replies are skipped. */
  request(msg: Buffer): [number, number] | null;
  close(): void;
}

/**
 * A NETLINK_ROUTE socket driven from the event loop (native/rtnl-channel.cc):
 * the socket of a watch, of asynchronous statistics reads and of sweeps.
 * Requests carry the sequence number JavaScript gave them.
 */
export interface NativeRtnlChannel {
  /** NETLINK_ADD_MEMBERSHIP of one RTNLGRP_* group. */
  join(group: number): void;
  /** Sets SO_RCVBUFFORCE (else SO_RCVBUF) and returns the size the kernel set. */
  receiveBuffer(bytes: number): number;
  /** The socket's netlink port id (nlmsg_pid of the kernel's replies to it). */
  portId(): number;
  send(req: Buffer): void;
  /** One datagram into the channel's buffer if one is there: its length, or -errno (-EAGAIN: none). */
  read(): number;
  /**
   * Sends a statistics request; when its reply is already there, writes the
   * counters into `out` and returns decodeStats' result, else STATS_PENDING
   * (the reply then reaches onData).
   */
  stats(req: Buffer, out: Float64Array): number;
  /** Whether the event loop watches the fd, and whether that keeps the loop alive. */
  poll(on: boolean, ref: boolean): void;
  close(): void;
}

/** A sweep over many channels (native/rtnl-channel.cc StatsSweep). */
export interface NativeStatsSweep {
  /**
   * Sends every member's request, then collects every reply: `results[i]`
   * is member i's decodeStats result (counters at `out[25 * i]`), a
   * negative errno, STATS_PENDING when its reply did not come within
   * `timeoutMs`, or STATS_SKIPPED when `skip[i]` was set.
   */
  read(out: Float64Array, results: Int32Array, skip: Uint8Array, timeoutMs: number): void;
  /** Member i's request from now on. */
  setRequest(i: number, req: Buffer): void;
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
  /**
   * The regular files directly in `dir` of at most `maxBytes`, as
   * [name, content, name, content, ...] (UTF-8): never through a symlink,
   * never blocking on a FIFO; a file that cannot be read is left out. Throws
   * when the directory cannot be opened or listed.
   */
  readDirFiles(dir: string, maxBytes: number): string[];
  /** COUNTERS: where statsReader()'s function writes (a Float64Array of 25 or more), kept by the socket. */
  RtnlSocket: new (
    fd: number,
    counters?: Float64Array,
  ) => NativeRtnlSocket;
  /** Owns FD (a NETLINK_NETFILTER socket opened elsewhere), or opens one in the calling thread's namespace. */
  NfnlSocket: new (
    fd?: number,
  ) => NativeNfnlSocket;
  /**
   * The batch reply scanner over captured bytes (for tests): per message,
   * 1 acked, a negative errno refused, 0 no answer; null for replies that
   * do not frame.
   */
  scanBatchReplies(buf: Buffer, base: number, count: number): number[] | null;
  /** The stats fast path's C++ decoder over captured bytes (for tests). */
  decodeStats(buf: Buffer, len: number, out: Float64Array): number;
  STATS_MALFORMED: number;
  STATS_MISSING: number;
  /**
   * A channel that owns `fd`: each datagram the event loop reads from it is
   * written into `buf`, then `onData(len, 0)` runs (it must decode `buf`
   * before it returns); a failed read is `onData(0, errno)`.
   */
  RtnlChannel: new (
    fd: number,
    buf: Buffer,
    onData: (len: number, errno: number) => void,
  ) => NativeRtnlChannel;
  /**
   * A statistics read over many channels, made once: `reqs[i]` (copied) is
   * sent on `channels[i]` at each `read`.
   */
  StatsSweep: new (
    channels: NativeRtnlChannel[],
    reqs: Buffer[],
  ) => NativeStatsSweep;
  /** A sweep's read left this member out (its `skip` byte was set). */
  STATS_SKIPPED: number;
  /** The reply to a channel's request is still to come. */
  STATS_PENDING: number;
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
   * connected to `addr` (a raw sockaddr). Returns the index of its
   * counters in the group's {@link RelayStats.ports}.
   */
  relayListen(group: number, fd: number, addr: Buffer): number;
  /**
   * Hands a bound host UDP socket to the relay, which owns it from then on:
   * each client address gets a socket of the group's UDP pool connected to
   * `addr`, closed after `idleMs` without a datagram; at `maxFlows` the
   * least recently used flow makes room. Returns the index of its counters
   * in the group's {@link RelayStats.ports}.
   */
  relayUdp(group: number, fd: number, addr: Buffer, idleMs: number, maxFlows: number): number;
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
  /**
   * The tap and the packet socket of a delay line (native/delayline.cc),
   * made inside the namespace on a thread of their own: [tapFd, packetFd].
   * The tap (IFF_TAP | IFF_NO_PI, not persistent: it goes with its fd) is
   * up, without IPv6 or ARP; the packet socket is bound to `ifindex`,
   * receives nothing and marks what it sends with `mark` (SO_MARK).
   */
  delayLineSockets(nsfd: number, tapName: string, ifindex: number, mark: number): Promise<number[]>;
  /**
   * Starts a delay line that reads datagrams (frames) from `inFd` and sends
   * each to `outFd` once its time comes; owns both fds from the call on.
   * `params`: [delayNs, jitterNs, loss (0 to 1), rate (bytes/s, 0: none),
   * limit (frames queued at most)]. Returns its id.
   */
  delayLineStart(inFd: number, outFd: number, params: number[]): number;
  /** New parameters for the frames that come from now on; false for an unknown line. */
  delayLineSet(id: number, params: number[]): boolean;
  /**
   * [frames, delivered, lost, overflowed, failed, queued, errno] of a line
   * (errno: why its input stopped, 0 while it reads), or undefined.
   */
  delayLineStats(id: number): number[] | undefined;
  /** Stops a line, closes its fds, drops what it holds; its final stats, or undefined. */
  delayLineClose(id: number): number[] | undefined;
  /** bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_SCHED_CLS program (struct bpf_insn[]): its fd. */
  loadSchedCls(insns: Buffer, license: string): number;
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
  /**
   * A group's only: the counters of each port handed to it (relayListen,
   * relayUdp), at the index those returned.
   */
  ports?: RelayPortStats[];
}

/**
 * Counters of one port of a relay group, in the container's view: rx is
 * what went from the client to the container, tx what came back.
 */
export interface RelayPortStats {
  /** TCP connections accepted on it and relayed. */
  connections: number;
  /** Of which are being relayed now. */
  active: number;
  /** Bytes written towards the container (UDP: payloads). */
  rxBytes: number;
  /** Bytes written back to clients. */
  txBytes: number;
  /** UDP datagrams relayed towards the container. */
  rxDatagrams: number;
  /** UDP datagrams relayed back to clients. */
  txDatagrams: number;
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

/** The file name of the user namespace helper executable (native/userns-helper.cc). */
export const USERNS_HELPER = 'podnet-userns';

/** The file name of ns.spawn's exec helper executable (native/exec-helper.c). */
export const EXEC_HELPER = 'podnet-exec';

const HELPERS = {
  [USERNS_HELPER]: {
    env: 'PODNET_USERNS_HELPER',
    what: 'user namespace helper',
    compiler: 'a C++17',
  },
  [EXEC_HELPER]: { env: 'PODNET_EXEC_HELPER', what: 'exec helper', compiler: 'a C' },
} as const;
const foundHelpers = new Map<string, string>();

/**
 * One of podnet's helper executables, found where the addon is: in
 * build/Release after a local build, else in the prebuilds/ directory of
 * the package's platform and architecture (static executables, so one
 * build fits glibc and musl), or the file its variable (PODNET_USERNS_HELPER,
 * PODNET_EXEC_HELPER) names: the sanitizer build of
 * scripts/build-sanitized.js, not for production use. Throws
 * ERR_PODNET_NO_ADDON, one line saying where it looked and how to build
 * it, when there is none.
 */
function helperExecutable(name: keyof typeof HELPERS): string {
  const { env, what, compiler } = HELPERS[name];
  const override = process.env[env];
  const known = override ? undefined : foundHelpers.get(name);
  if (known !== undefined) return known;
  const candidates = override
    ? [override]
    : [
        join(packageDir, 'build', 'Release', name),
        join(packageDir, 'prebuilds', `${process.platform}-${process.arch}`, name),
      ];
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK);
      // An override may change between calls (tests); the places found are fixed.
      if (!override) foundHelpers.set(name, path);
      return path;
    } catch {
      // The next place, as node-gyp-build goes on to prebuilds/.
    }
  }
  throw new PodnetError(
    'ERR_PODNET_NO_ADDON',
    `podnet's ${what} is not available: no executable ${candidates.join(' or ')}; ` +
      `build it with python3, make and ${compiler} compiler: cd ${packageDir} && npx node-gyp rebuild`,
  );
}

/** The user namespace helper executable (see {@link helperExecutable}). */
export function usernsHelperPath(): string {
  return helperExecutable(USERNS_HELPER);
}

/** ns.spawn's exec helper executable (see {@link helperExecutable}). */
export function execHelperPath(): string {
  return helperExecutable(EXEC_HELPER);
}

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

/**
 * Opens PATH (absolute) as a network namespace: an nsfs fd (O_CLOEXEC) the
 * caller closes with `native.closeFd`. A file that is not one is a
 * NotANamespaceError; a failed open a PodnetSystemError (ENOENT, ...).
 */
export async function openNetnsFd(path: string): Promise<number> {
  const fd = await call(`opening network namespace '${path}'`, native.openNetns(path));
  if (fd === -1) throw new NotANamespaceError(path, 'not an nsfs file');
  if (fd === -2) throw new NotANamespaceError(path, 'a namespace of another type');
  return fd;
}
