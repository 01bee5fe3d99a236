import { spawn } from 'node:child_process';
import { type FileHandle, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError, InvalidArgumentError } from '../errors.js';
import type { PortMapping } from '../ports.js';
import {
  DEFAULT_STOP_GRACE_MS,
  type EngineExit,
  EngineProcess,
  type EngineProcessInit,
  LOG_TAIL_BYTES,
  probeOutput,
  type ReadyWatch,
  raceReady,
  type StartOutcome,
  signalGroup,
  watchExit,
} from './engine-process.js';
import { EngineMissingError, EngineProbeError, EngineStartError } from './errors.js';
import {
  buildPastaArgs,
  type PastaOptions,
  type PastaTarget,
  parsePastaOptions,
  pastaPortSpec,
} from './pasta-options.js';
import { findExecutable } from './slirp4netns-probe.js';

/** A probed pasta binary. */
export interface PastaBinary {
  /** Absolute path of the binary. */
  path: string;
  /**
   * Its version (e.g. `2024_03_20.71dd405`), or undefined when the build
   * does not know it: Debian's prints `pasta unknown version`.
   */
  version: string | undefined;
  /**
   * Whether this pasta splices a loopback client of a port it publishes to
   * the namespace's loopback (passt before 2024_10_30): the server inside
   * then sees 127.0.0.1 as its peer, and a service bound only to the
   * container's 127.0.0.1 answers on the published host port
   * (CVE-2021-20199 again; podman issue 24045). podnet then publishes ports
   * through its own forwarder instead ({@link startPasta}).
   */
  splicesLoopback: boolean;
}

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
/** How often podnet looks for the pid file while pasta sets up. */
const PID_POLL_MS = 10;
/** The fd a pid target's namespace is passed on (see start()). */
const NETNS_FD = 3;

function runForOutput(path: string, arg: string): Promise<string> {
  return probeOutput(
    path,
    arg,
    (detail, cause) => new EngineProbeError('pasta', path, detail, { cause }),
  );
}

/**
 * Reads the version from `pasta --version` output: the first line is
 * `pasta VERSION`, or `pasta unknown version` (undefined). Returns null when
 * the text does not start like pasta's.
 */
export function parsePastaVersion(text: string): string | undefined | null {
  const m = /^pasta (\S.*?)\s*$/m.exec(text.trimStart().split('\n', 1)[0] ?? '');
  if (m === null) return null;
  return m[1] === 'unknown version' ? undefined : m[1]!;
}

/** The first passt release whose spliced forwards dial the namespace's own address. */
const UNSPLICED_SINCE = '2024_10_30';

/**
 * Whether a pasta splices loopback clients of its published ports into the
 * namespace's loopback, judged from its `--help` text and version.
 *
 * The release that stopped it (2024_10_30, passt commit "fwd: Direct
 * inbound spliced forwards to the guest's external address") added
 * `--host-lo-to-ns-lo` to ask for the old behaviour back, so a help text
 * listing that option means the new default. Debian's builds print no
 * version, which leaves the help text; a dated version from that release
 * on counts as new too, should a later release drop the deprecated option.
 * Anything else is taken to splice, the side on which podnet's forwarder
 * is used: slower, never unsafe.
 */
export function pastaSplicesLoopback(help: string, version: string | undefined): boolean {
  if (/^\s*--host-lo-to-ns-lo\b/m.test(help)) return false;
  const date = /^(\d{4}_\d{2}_\d{2})\./.exec(version ?? '')?.[1];
  return date === undefined || date < UNSPLICED_SINCE;
}

interface CachedProbe {
  /** What identifies the file's contents cheaply: inode, size, change times. */
  stamp: string;
  binary: PastaBinary;
}

/** Probes by absolute path, each kept until the file changes (two runs of it per probe are slow). */
const probes = new Map<string, CachedProbe>();

async function fileStamp(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/**
 * Locates pasta (on PATH unless `path` is given), reads its version and
 * judges from its help whether it splices loopback clients (see
 * {@link pastaSplicesLoopback}). A binary is probed once until its file
 * changes. Throws EngineMissingError when there is no such executable,
 * EngineProbeError when it does not answer like pasta or lacks an option
 * podnet relies on.
 */
export async function probePasta(path?: string): Promise<PastaBinary> {
  const found = await findExecutable(path ?? 'pasta');
  if (found === undefined) throw new EngineMissingError('pasta', path);
  const stamp = await fileStamp(found);
  const cached = probes.get(found);
  if (cached !== undefined && stamp !== undefined && cached.stamp === stamp) return cached.binary;
  const versionText = await runForOutput(found, '--version');
  const version = parsePastaVersion(versionText);
  if (version === null) {
    throw new EngineProbeError(
      'pasta',
      found,
      `'--version' did not print a pasta version: ${JSON.stringify(versionText.slice(0, 200))}`,
    );
  }
  const help = await runForOutput(found, '--help');
  for (const option of ['--config-net', '--runas', '--netns', '--pid', '--log-file']) {
    if (!help.includes(option))
      throw new EngineProbeError('pasta', found, `'--help' lists no ${option}`);
  }
  // Frozen: the cache hands the same object to every caller.
  const binary: PastaBinary = Object.freeze({
    path: found,
    version,
    splicesLoopback: pastaSplicesLoopback(help, version),
  });
  if (stamp !== undefined) probes.set(found, { stamp, binary });
  return binary;
}

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
    const timeoutMs = opts.timeoutMs ?? DEFAULT_PASTA_START_TIMEOUT_MS;
    const signal = opts.signal;
    if (signal?.aborted) throw new AbortError('starting pasta', { cause: signal.reason });

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

    let dir: string;
    let out: FileHandle;
    try {
      dir = await mkdtemp(join(opts.runDir ?? tmpdir(), 'podnet-pasta-'));
    } catch (err) {
      await netnsFile?.close();
      throw err;
    }
    const logPath = join(dir, 'pasta.log');
    const outPath = join(dir, 'pasta.out');
    const pidFile = join(dir, 'pasta.pid');
    let args: string[];
    try {
      args = buildPastaArgs({
        options,
        ...(opts.ports ? { ports: opts.ports } : {}),
        target: pastaTarget,
        logPath,
        pidFile,
        runAsRoot: root,
      });
      // pasta truncates its --log-file when it opens it, so what it says
      // before then (bad options) goes to a file of its own.
      out = await open(outPath, 'wx', 0o600);
    } catch (err) {
      await netnsFile?.close();
      await rm(dir, { recursive: true, force: true });
      throw err;
    }

    const stdio: ('ignore' | number)[] = ['ignore', out.fd, out.fd];
    if (netnsFile !== undefined) stdio[NETNS_FD] = netnsFile.fd;
    const child = spawn(binary.path, args, { stdio, detached: true });
    // Before any await: an early exit must not be missed.
    const { exited, spawnError } = watchExit(child);
    await out.close();
    await netnsFile?.close();

    const outcome = await waitUntilReady({
      pidFile,
      exited,
      timeoutMs,
      signal,
      spawnError,
    });
    if (outcome.ok) {
      // The owner decides pasta's life through stop(); it must not keep Node's loop alive.
      child.unref();
      return new Pasta({
        child,
        exited,
        dir,
        logPath,
        outPath,
        binary,
        args,
        graceMs: opts.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      });
    }
    signalGroup(child, 'SIGKILL');
    const end = await exited;
    const log = await readTail([outPath, logPath]);
    await rm(dir, { recursive: true, force: true });
    if (outcome.reason === 'aborted')
      throw new AbortError('starting pasta', { cause: signal?.reason });
    throw new EngineStartError(
      'pasta',
      outcome.detail,
      {
        reason: outcome.reason,
        path: binary.path,
        ...(child.pid === undefined ? {} : { pid: child.pid }),
        exitCode: end.code,
        signal: end.signal,
        log,
      },
      spawnError() === undefined ? {} : { cause: spawnError() },
    );
  }

  /** The end of what pasta has logged so far ('' once stopped). */
  readLog(bytes = LOG_TAIL_BYTES): Promise<string> {
    return readTail([this.#outPath, this.logPath], bytes);
  }
}

/**
 * Waits for pasta's pid file: pasta writes it (in the foreground as well)
 * only after it has configured the namespace and bound the published ports,
 * so it is the ready signal. Resolves at once when pasta exits or the caller
 * aborts, and after `timeoutMs` otherwise.
 */
function waitUntilReady(w: ReadyWatch & { pidFile: string }): Promise<StartOutcome> {
  return raceReady(w, async (done) => {
    while (!done.aborted) {
      // pasta creates the file empty, then writes "PID\n" in one write once set up.
      const text = await readFile(w.pidFile, 'utf8').catch(() => '');
      if (/^\d+\n$/.test(text)) return { ok: true };
      await sleep(PID_POLL_MS);
    }
    return new Promise<StartOutcome>(() => undefined);
  });
}
