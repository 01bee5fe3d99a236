import { type FileHandle, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError } from '../../errors.js';
import type { PortMapping } from '../../ports.js';
import {
  DEFAULT_STOP_GRACE_MS,
  type EngineExit,
  EngineProcess,
  type EngineProcessInit,
  LOG_TAIL_BYTES,
  type StartedEngine,
  type StartOutcome,
  signalGroup,
  startEngineProcess,
} from '../engine-process.js';
import { EngineStartError } from '../errors.js';
import {
  buildPastaArgs,
  type PastaOptions,
  type PastaTarget,
  parsePastaOptions,
  pastaPortSpec,
} from './options.js';
import { type PastaBinary, probePasta } from './probe.js';

/** Options of {@link Pasta.start}. Give exactly one of `netns` and `pid`. */
export interface PastaStartOptions {
  /** Path of a mounted network namespace to attach to. */
  netns?: string;
  /**
   * A process whose network namespace to attach to. As root podnet opens
   * that namespace and hands pasta the fd, so pasta keeps the namespace
   * alive until stop() even after the process exits; unprivileged, pasta
   * joins the process's user namespace too.
   */
  pid?: number;
  /** pasta's own options, podman-style (`['-t', '8080:80', '--no-dhcp']`), or already parsed. */
  options?: readonly string[] | PastaOptions;
  /** Ports to publish, added as `-t`/`-u` specs. */
  ports?: readonly PortMapping[];
  /** A probed binary, or the path of one to probe (default: pasta on PATH). */
  binary?: PastaBinary | string;
  /** Parent of the private (0700, created exclusively) directory for the log and pid file; default the OS temp dir. */
  runDir?: string;
  /** How long to wait for pasta to be set up (default 10 s). */
  timeoutMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL (default 2 s). */
  stopGraceMs?: number;
  /** Aborting it while starting kills pasta and rejects with AbortError. */
  signal?: AbortSignal;
}

/** How a pasta process ended. */
export type PastaExit = EngineExit;

/** Default ready deadline: pasta is set up in milliseconds unless something is wrong. */
export const DEFAULT_PASTA_START_TIMEOUT_MS = 10_000;
/** The files of pasta's private directory: its early output, its log, its pid file. */
const OUT_FILE = 'pasta.out';
const LOG_FILE = 'pasta.log';
const PID_FILE = 'pasta.pid';
/** How often podnet looks for the pid file while pasta sets up. */
const PID_POLL_MS = 10;
/** The fd a pid target's namespace is passed on (see start()). */
const NETNS_FD = 3;

/** The tail of pasta's log file and of what it wrote to stdout/stderr before logging started. */
async function readTail(paths: readonly string[], bytes = LOG_TAIL_BYTES): Promise<string> {
  const parts: string[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      continue;
    }
    // Without a syslog socket pasta reports each early message's failed send too.
    parts.push(text.replace(/^Failed to send \d+ bytes to syslog\n/gm, ''));
  }
  const all = parts.filter((p) => p.trim() !== '').join('\n');
  return all.length > bytes ? all.slice(-bytes) : all;
}

function targetOf(opts: PastaStartOptions): PastaTarget {
  if ((opts.netns === undefined) === (opts.pid === undefined)) {
    throw new InvalidArgumentError('Pasta.start needs exactly one of netns and pid');
  }
  if (opts.pid !== undefined && !(Number.isInteger(opts.pid) && opts.pid > 0)) {
    throw new InvalidArgumentError(`Pasta.start: pid ${opts.pid} is not a process id`);
  }
  return opts.netns !== undefined ? { netns: opts.netns } : { pid: opts.pid! };
}

/**
 * A running pasta process giving a network namespace user-mode networking:
 * a tap interface configured like the host's (same name, addresses and
 * routes, `--config-net`), with the requested ports published from the host.
 * Runs in the foreground in its own process group; emits 'exit' (with a
 * {@link PastaExit}) when the process ends.
 */
export class Pasta extends EngineProcess<PastaBinary> {
  readonly #outPath: string;

  private constructor(init: EngineProcessInit<PastaBinary> & { outPath: string }) {
    super(init);
    this.#outPath = init.outPath;
  }

  /** pasta exits at once on SIGTERM, and its tap interface goes with it. */
  protected override askToStop(): void {
    signalGroup(this.child, 'SIGTERM');
  }

  /**
   * Locates pasta (on PATH unless `path` is given), reads its version and
   * whether it splices loopback clients. Throws EngineMissingError (code
   * ERR_PODNET_ENGINE_MISSING) when there is none.
   */
  static probe(path?: string): Promise<PastaBinary> {
    return probePasta(path);
  }

  /**
   * Starts pasta on a namespace (by path or pid) and resolves once it has
   * configured the namespace's interface and bound the published ports
   * (it writes its pid file only then). pasta publishes `ports` itself:
   * with a binary whose `splicesLoopback` is true, a loopback client then
   * reaches the namespace's loopback, so {@link startPasta} publishes
   * through podnet's forwarder instead. Options are validated first
   * (InvalidArgumentError, nothing started). Rejects with EngineStartError at
   * once when pasta exits first (its log's tail in the message), or when
   * `timeoutMs` passes; in every failure the process group is killed and the
   * private directory removed first.
   */
  static async start(opts: PastaStartOptions): Promise<Pasta> {
    const target = targetOf(opts);
    const options = Array.isArray(opts.options)
      ? parsePastaOptions(opts.options)
      : ((opts.options as PastaOptions | undefined) ?? parsePastaOptions());
    const root = process.getuid?.() === 0;
    // Bad ports fail here, before anything exists.
    for (const mapping of opts.ports ?? []) pastaPortSpec(mapping);
    const binary = typeof opts.binary === 'object' ? opts.binary : await probePasta(opts.binary);

    // As root, pasta drops its capabilities before it opens /proc/PID/ns/*,
    // and without them the kernel refuses it another root process's
    // namespaces (EACCES). podnet opens the namespace itself and hands pasta
    // the fd, by a path that needs no such check.
    let netnsFile: FileHandle | undefined;
    if ('pid' in target && root) {
      try {
        netnsFile = await open(`/proc/${target.pid}/ns/net`, 'r');
      } catch (cause) {
        throw new InvalidArgumentError(
          `Pasta.start: cannot open the network namespace of pid ${target.pid}`,
          { cause },
        );
      }
    }
    const pastaTarget: PastaTarget =
      netnsFile === undefined ? target : { netns: `/proc/self/fd/${NETNS_FD}` };
    let started: StartedEngine;
    try {
      started = await startEngineProcess({
        engine: 'pasta',
        path: binary.path,
        parentDir: opts.runDir,
        // pasta truncates its --log-file when it opens it, so what it says
        // before then (bad options) goes to a file of its own.
        outFile: OUT_FILE,
        timeoutMs: opts.timeoutMs ?? DEFAULT_PASTA_START_TIMEOUT_MS,
        signal: opts.signal,
        command: (dir) => ({
          args: buildPastaArgs({
            options,
            ...(opts.ports ? { ports: opts.ports } : {}),
            target: pastaTarget,
            logPath: join(dir, LOG_FILE),
            pidFile: join(dir, PID_FILE),
            runAsRoot: root,
          }),
          ...(netnsFile === undefined ? {} : { fds: { [NETNS_FD]: netnsFile.fd } }),
        }),
        ready: (_child, dir, done) => waitUntilReady(join(dir, PID_FILE), done),
        readLog: (dir) => readTail([join(dir, OUT_FILE), join(dir, LOG_FILE)]),
        startError: (detail, info, cause) =>
          new EngineStartError('pasta', detail, info, cause === undefined ? {} : { cause }),
      });
    } finally {
      // pasta has its own copy of the fd once spawned.
      await netnsFile?.close();
    }
    const { child, exited, dir, args } = started;
    // The owner decides pasta's life through stop(); it must not keep Node's loop alive.
    child.unref();
    return new Pasta({
      child,
      exited,
      dir,
      logPath: join(dir, LOG_FILE),
      outPath: join(dir, OUT_FILE),
      binary,
      args,
      graceMs: opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
    });
  }

  /** The end of what pasta has logged so far ('' once stopped). */
  readLog(bytes = LOG_TAIL_BYTES): Promise<string> {
    return readTail([this.#outPath, this.logPath], bytes);
  }
}

/**
 * Waits for pasta's pid file: pasta writes it (in the foreground as well)
 * only after it has configured the namespace and bound the published ports,
 * so it is the ready signal.
 */
async function waitUntilReady(pidFile: string, done: AbortSignal): Promise<StartOutcome> {
  while (!done.aborted) {
    // pasta creates the file empty, then writes "PID\n" in one write once set up.
    const text = await readFile(pidFile, 'utf8').catch(() => '');
    if (/^\d+\n$/.test(text)) return { ok: true };
    await sleep(PID_POLL_MS);
  }
  return new Promise<StartOutcome>(() => undefined);
}
