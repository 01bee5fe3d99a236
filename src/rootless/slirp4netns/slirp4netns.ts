import type { ChildProcess } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { publish } from '../../diagnostics.js';
import { ClosedError, InvalidArgumentError } from '../../errors.js';
import {
  DEFAULT_STOP_GRACE_MS,
  type EngineExit,
  EngineProcess,
  type EngineProcessInit,
  LOG_TAIL_BYTES,
  type StartOutcome,
  startEngineProcess,
} from '../engine-process.js';
import { EngineStartError } from '../errors.js';
import { findExecutable } from '../executable.js';
import { Slirp4netnsApi, type SlirpPortForward, type SlirpPortForwardEntry } from './api.js';
import {
  buildSlirp4netnsArgs,
  parseSlirp4netnsOptions,
  SLIRP4NETNS_EXIT_FD,
  SLIRP4NETNS_READY_FD,
  type Slirp4netnsOptions,
  type Slirp4netnsTarget,
} from './options.js';
import { probeSlirp4netns, type Slirp4netnsBinary } from './probe.js';

/** Options of {@link Slirp4netns.start}. Give exactly one of `netns` and `pid`. */
export interface Slirp4netnsStartOptions {
  /** Path of a mounted network namespace to attach to. */
  netns?: string;
  /** A process whose network namespace to attach to. */
  pid?: number;
  /** podman-style `key=value` options, or options already parsed. */
  options?: readonly string[] | Slirp4netnsOptions;
  /** A probed binary, or the path of one to probe (default: slirp4netns on PATH). */
  binary?: Slirp4netnsBinary | string;
  /**
   * Parent of the private (0700, created exclusively) directory that holds
   * the API socket and the log; default the OS temp dir.
   */
  apiSocketDir?: string;
  /** How long to wait for slirp4netns to become ready (default 10 s). */
  timeoutMs?: number;
  /** Deadline of each API request (default 5 s). */
  apiTimeoutMs?: number;
  /** How long stop() waits after closing the exit fd before SIGKILL (default 2 s). */
  stopGraceMs?: number;
  /** Aborting it while starting kills slirp4netns and rejects with AbortError. */
  signal?: AbortSignal;
}

/** How a slirp4netns process ended. */
export type Slirp4netnsExit = EngineExit;

/** Default ready deadline: slirp4netns is ready in milliseconds unless something is wrong. */
export const DEFAULT_SLIRP4NETNS_START_TIMEOUT_MS = 10_000;
/** sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH = 107;
/** slirp4netns's stdout and stderr, in its private directory. */
const LOG_FILE = 'slirp4netns.log';
/** The API socket appears right after ready; this is how often podnet looks for it. */
const SOCKET_POLL_MS = 5;

async function readTail(path: string, bytes = LOG_TAIL_BYTES): Promise<string> {
  try {
    const fh = await open(path, 'r');
    try {
      const { size } = await fh.stat();
      const start = Math.max(0, size - bytes);
      const buf = Buffer.alloc(size - start);
      await fh.read(buf, 0, buf.length, start);
      return buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

/**
 * Whether slirp4netns's sandbox is safe to enable, and the unshare(1) to
 * start it under when it needs one. As root it must get a private mount
 * namespace first. Unprivileged, it attaches by pid and joins the target's
 * user namespace, and a mount namespace made there is less privileged than
 * the host's: the kernel turns its shared mounts into slaves, so the
 * sandbox's unmounts cannot reach the host.
 */
async function sandboxing(
  binary: Slirp4netnsBinary,
  target: Slirp4netnsTarget,
): Promise<{ sandbox: boolean; unshare?: string }> {
  if (!binary.features.enableSandbox) return { sandbox: false };
  if (process.getuid?.() !== 0) return { sandbox: 'pid' in target };
  const unshare = await findExecutable('unshare');
  return unshare === undefined ? { sandbox: false } : { sandbox: true, unshare };
}

function targetOf(opts: Slirp4netnsStartOptions): Slirp4netnsTarget {
  if ((opts.netns === undefined) === (opts.pid === undefined)) {
    throw new InvalidArgumentError('Slirp4netns.start needs exactly one of netns and pid');
  }
  return opts.netns !== undefined ? { netns: opts.netns } : { pid: opts.pid! };
}

/**
 * A running slirp4netns process giving a network namespace user-mode
 * networking (tap0, 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3). It holds
 * the write end of slirp4netns's exit fd, so slirp4netns ends when stop() is
 * called or when this process exits, never outliving its owner unnoticed.
 * Emits 'exit' (with a {@link Slirp4netnsExit}) when the process ends.
 */
export class Slirp4netns extends EngineProcess<Slirp4netnsBinary> {
  /** The API socket, when started with port_handler=slirp4netns. */
  readonly apiSocket: string | undefined;

  readonly #exitFd: Socket;
  readonly #api: Slirp4netnsApi | undefined;

  private constructor(
    init: EngineProcessInit<Slirp4netnsBinary> & {
      exitFd: Socket;
      apiSocket: string | undefined;
      apiTimeoutMs: number | undefined;
    },
  ) {
    super(init);
    this.#exitFd = init.exitFd;
    this.apiSocket = init.apiSocket;
    this.#api =
      init.apiSocket === undefined
        ? undefined
        : new Slirp4netnsApi(
            init.apiSocket,
            init.apiTimeoutMs === undefined ? {} : { timeoutMs: init.apiTimeoutMs },
          );
  }

  /** slirp4netns exits on its own once the write end of its exit fd closes. */
  protected override askToStop(): void {
    this.#exitFd.destroy();
  }

  protected override onExit(exit: EngineExit): void {
    publish('podnet:slirp:exit', { pid: this.pid, ...exit });
  }

  /**
   * Locates slirp4netns (on PATH unless `path` is given) and reads its
   * version and flags. Throws EngineMissingError (code
   * ERR_PODNET_ENGINE_MISSING) when there is none.
   */
  static probe(path?: string): Promise<Slirp4netnsBinary> {
    return probeSlirp4netns(path);
  }

  /**
   * Starts slirp4netns on a namespace (by path or pid) and resolves once it
   * has configured tap0 (and, with port_handler=slirp4netns, created its API
   * socket). Rejects with EngineStartError at once when it exits first
   * (its log's tail in the message), or when `timeoutMs` passes; in every
   * failure the process is killed and its directory removed first.
   */
  static async start(opts: Slirp4netnsStartOptions): Promise<Slirp4netns> {
    const target = targetOf(opts);
    const options = Array.isArray(opts.options)
      ? parseSlirp4netnsOptions(opts.options)
      : ((opts.options as Slirp4netnsOptions | undefined) ?? parseSlirp4netnsOptions());
    const binary =
      typeof opts.binary === 'object' ? opts.binary : await probeSlirp4netns(opts.binary);
    const { sandbox, unshare } = await sandboxing(binary, target);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_SLIRP4NETNS_START_TIMEOUT_MS;

    let apiSocket: string | undefined;
    const { child, exited, dir, args } = await startEngineProcess({
      engine: 'slirp4netns',
      path: binary.path,
      parentDir: opts.apiSocketDir,
      outFile: LOG_FILE,
      timeoutMs,
      signal: opts.signal,
      command: (dir) => {
        apiSocket = options.portHandler === 'slirp4netns' ? join(dir, 'api.sock') : undefined;
        if (apiSocket !== undefined && Buffer.byteLength(apiSocket) > MAX_SOCKET_PATH) {
          throw new InvalidArgumentError(
            `slirp4netns API socket path '${apiSocket}' is longer than ${MAX_SOCKET_PATH} bytes: use a shorter apiSocketDir`,
          );
        }
        const args = buildSlirp4netnsArgs({
          options,
          features: binary.features,
          target,
          ...(apiSocket === undefined ? {} : { apiSocket }),
          privateMountNamespace: sandbox,
        });
        return {
          args,
          // unshare(1) execs slirp4netns in place, so the pid stays slirp4netns's.
          ...(unshare === undefined
            ? {}
            : { wrapper: [unshare, '--mount', '--propagation', 'private', '--'] }),
          fds: { [SLIRP4NETNS_EXIT_FD]: 'pipe', [SLIRP4NETNS_READY_FD]: 'pipe' },
        };
      },
      ready: (child, _dir, done) => waitUntilReady(child, apiSocket, done),
      readLog: (dir) => readTail(join(dir, LOG_FILE)),
      startError: (detail, info, cause) =>
        new EngineStartError('slirp4netns', detail, info, cause === undefined ? {} : { cause }),
      report: (outcome) => publish('podnet:slirp:start', { path: binary.path, ...outcome }),
    });
    const exitFd = child.stdio[SLIRP4NETNS_EXIT_FD] as Socket;
    // Unref'd: an owner that exits without stop() closes the exit fd, and slirp4netns follows.
    child.unref();
    exitFd.unref();
    return new Slirp4netns({
      child,
      exitFd,
      exited,
      dir,
      logPath: join(dir, LOG_FILE),
      apiSocket,
      binary,
      args,
      apiTimeoutMs: opts.apiTimeoutMs,
      graceMs: opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    });
  }

  #client(): Slirp4netnsApi {
    if (this.stopping) throw new ClosedError('slirp4netns');
    if (this.#api === undefined) {
      throw new InvalidArgumentError(
        'slirp4netns was started without an API socket: use port_handler=slirp4netns',
      );
    }
    return this.#api;
  }

  /** Publishes a host port into the namespace; returns the forward's id. */
  addPortForward(fwd: SlirpPortForward): Promise<number> {
    return this.#client().addPortForward(fwd);
  }

  /** The port forwards slirp4netns has. */
  listPortForwards(): Promise<SlirpPortForwardEntry[]> {
    return this.#client().listPortForwards();
  }

  /** Removes a port forward by id. */
  removePortForward(id: number): Promise<void> {
    return this.#client().removePortForward(id);
  }

  /** The end of slirp4netns's log so far ('' once stopped). */
  readLog(bytes = LOG_TAIL_BYTES): Promise<string> {
    return readTail(this.logPath, bytes);
  }
}

/**
 * Waits for slirp4netns's ready fd, and then for its API socket when it has
 * one. Errors on this process's pipe ends (EPIPE, ECONNRESET when it dies)
 * are expected and reported through its exit instead.
 */
async function waitUntilReady(
  child: ChildProcess,
  apiSocket: string | undefined,
  done: AbortSignal,
): Promise<StartOutcome> {
  const exitFd = child.stdio[SLIRP4NETNS_EXIT_FD] as Socket | null;
  const readyFd = child.stdio[SLIRP4NETNS_READY_FD] as Socket | null;
  exitFd?.on('error', () => undefined);
  readyFd?.on('error', () => undefined);
  if (exitFd === null || readyFd === null)
    return { ok: false, reason: 'spawn', detail: 'no exit fd or ready fd pipe' };
  try {
    await new Promise<void>((resolve) => readyFd.once('data', () => resolve()));
  } finally {
    readyFd.destroy();
  }
  // slirp4netns binds its API socket just after it signals ready.
  while (apiSocket !== undefined && !done.aborted) {
    const st = await stat(apiSocket).catch(() => undefined);
    if (st?.isSocket()) break;
    await sleep(SOCKET_POLL_MS);
  }
  return { ok: true };
}
