import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { PodnetError, PodnetSystemError } from '../../errors.js';
import {
  decodeExecStatus,
  EXEC_STATUS_BYTES,
  execHelperArgv,
  stageError,
} from '../../exec-helper.js';
import { execHelperPath } from '../../native.js';

/** What a finished plugin process left behind. */
export interface PluginOutput {
  /** Everything it wrote to stdout (at most the cap). */
  stdout: Buffer;
  /** The start of what it wrote to stderr (informational only). */
  stderr: Buffer;
  /** Its exit code, or null when a signal ended it. */
  exitCode: number | null;
  /** The signal that ended it, if any. */
  signal: NodeJS.Signals | null;
}

/** Why a plugin process did not finish on its own. */
export type PluginExecFailure =
  | { kind: 'timeout' }
  | { kind: 'aborted'; reason: unknown }
  | { kind: 'too-large'; limit: number }
  | { kind: 'spawn'; error: NodeJS.ErrnoException }
  | { kind: 'hook'; error: unknown };

/** Thrown by {@link execPlugin} when the process did not run to its end. */
export class PluginExecError extends Error {
  override readonly name = 'PluginExecError';
  /** What happened. */
  readonly failure: PluginExecFailure;

  constructor(failure: PluginExecFailure) {
    super(
      `plugin execution failed: ${failure.kind}`,
      failure.kind === 'spawn' || failure.kind === 'hook' ? { cause: failure.error } : {},
    );
    this.failure = failure;
  }
}

/** Options of one plugin execution. */
export interface ExecPluginOptions {
  /** Kill the plugin (and its process group) after this many milliseconds. */
  timeoutMs: number;
  /** Kill the plugin when its stdout grows past this many bytes. */
  maxOutputBytes: number;
  /** Kill the plugin when this aborts. */
  signal?: AbortSignal | undefined;
  /**
   * Awaited once the plugin process exists, before it gets its config on
   * stdin: a plugin does nothing before reading its config, so a caller
   * can record the pid first (a journal), and a crash of the caller before
   * that leaves a plugin that only reads EOF and exits. If it throws, the
   * plugin is killed and the execution rejects with that error.
   */
  onSpawn?: ((pid: number) => Promise<void> | void) | undefined;
  /**
   * The network namespace the plugin runs in (the runtime's `netns`), or
   * undefined for the caller's own: its path, and an nsfs fd of it the
   * runtime opened and checked, open until the execution settles. Enter
   * it by the fd (the path could be swapped after the check); the default
   * executor hands the fd to podnet-exec. A custom executor decides what
   * to do with it.
   */
  netns?: { readonly path: string; readonly fd: number } | undefined;
}

/**
 * Runs a plugin binary: how the runtime executes one plugin call. Replaceable
 * (like libcni's Exec interface) so the protocol can be tested without root.
 * An executor must await `options.onSpawn` (when given) before the plugin
 * gets its config: ADD's progress and rollback depend on it.
 */
export type PluginExecutor = (
  path: string,
  stdin: string,
  env: Readonly<Record<string, string>>,
  options: ExecPluginOptions,
) => Promise<PluginOutput>;

const STDERR_CAP = 64 * 1024;

/**
 * What a wrapper that starts the plugin (podnet-exec) gets beyond its
 * argv: a status pipe at fd 3, which it closes unwritten when the plugin
 * runs (close-on-exec) and writes to when it could not start it, and the
 * open fds it inherits from fd 4 on.
 */
export interface PluginWrapperFds {
  /** Inherited by the wrapper as fd 4, 5, ... (the caller keeps its own). */
  fds: readonly number[];
  /**
   * Reads what the wrapper wrote on its status pipe (empty when nothing):
   * the error of a plugin that was not started, or undefined when it runs.
   */
  status: (report: Buffer) => NodeJS.ErrnoException | undefined;
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // The plugin leads its own process group (detached), so this reaches
    // whatever it started too (iptables, ...), not just the plugin.
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Executes `path` once with `args` (none for a plugin; a wrapper such as
 * podnet-exec gets the plugin path here), never through a shell, with `stdin`
 * written to it and exactly `env` as its environment. The plugin runs in its
 * own process group so a deadline, an abort or an oversized stdout can kill it
 * together with its children. Rejects with PluginExecError in those cases and
 * when it cannot be started; a plugin that exits non-zero resolves (the
 * caller interprets its output). With `wrapper`, the process gets its status
 * pipe and fds, and the plugin counts as started (onSpawn, then stdin) only
 * once the pipe closed unwritten; what was written on it is a `spawn` failure.
 */
export function spawnPlugin(
  path: string,
  stdin: string,
  env: Readonly<Record<string, string>>,
  options: ExecPluginOptions,
  args: readonly string[] = [],
  wrapper?: PluginWrapperFds,
): Promise<PluginOutput> {
  return new Promise((resolve, reject) => {
    const signal = options.signal;
    if (signal?.aborted) {
      reject(new PluginExecError({ kind: 'aborted', reason: signal.reason }));
      return;
    }
    // The first three are pipes either way: the streams are never null.
    const child = spawn(path, args, {
      env,
      stdio: [
        'pipe',
        'pipe',
        'pipe',
        ...(wrapper === undefined ? [] : ['pipe' as const, ...wrapper.fds]),
      ],
      detached: true,
    }) as ChildProcessWithoutNullStreams;
    const out: Buffer[] = [];
    let outLength = 0;
    const err: Buffer[] = [];
    let errLength = 0;
    let failure: PluginExecFailure | undefined;
    let settled = false;

    const stop = (why: PluginExecFailure) => {
      if (failure !== undefined) return;
      failure = why;
      killGroup(child.pid);
      // A grandchild that left the group could keep our pipes open: once the
      // plugin itself has exited we stop waiting for them.
      child.stdout.destroy();
      child.stderr.destroy();
    };
    // With a wrapper: what it wrote on its status pipe, read once the pipe
    // has ended (the exec closed it, or the wrapper exited). A report is the
    // plugin's start failure; none starts the plugin (unless it is gone).
    const status = wrapper === undefined ? undefined : (child.stdio[3] as Readable | null);
    const report: Buffer[] = [];
    let reportLength = 0;
    let heard = wrapper === undefined;
    const hear = (startIfRuns: boolean): void => {
      if (heard) return;
      heard = true;
      if (failure !== undefined) return; // killed meanwhile: that is the outcome
      const error = wrapper?.status(Buffer.concat(report));
      if (error !== undefined) {
        stop({ kind: 'spawn', error });
        child.stdin.destroy();
      } else if (startIfRuns) {
        start();
      }
    };
    const timer = setTimeout(() => stop({ kind: 'timeout' }), options.timeoutMs);
    const onAbort = () => stop({ kind: 'aborted', reason: signal?.reason });
    signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (result: PluginOutput | PluginExecError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (result instanceof PluginExecError) reject(result);
      else resolve(result);
    };

    child.stdout.on('data', (chunk: Buffer) => {
      outLength += chunk.length;
      if (outLength > options.maxOutputBytes) {
        stop({ kind: 'too-large', limit: options.maxOutputBytes });
        return;
      }
      out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (errLength >= STDERR_CAP) return;
      err.push(chunk.subarray(0, STDERR_CAP - errLength));
      errLength += chunk.length;
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      finish(new PluginExecError({ kind: 'spawn', error }));
    });
    child.on('close', (exitCode, exitSignal) => {
      // Node may report the close before the status pipe's own end.
      hear(false);
      if (failure !== undefined) {
        finish(new PluginExecError(failure));
        return;
      }
      finish({
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err),
        exitCode,
        signal: exitSignal,
      });
    });
    // A plugin may exit without reading its config (EPIPE): its exit status
    // and output say what happened, so write errors are not failures.
    child.stdin.on('error', () => {});
    const start = (): void => {
      const onSpawn = options.onSpawn;
      if (onSpawn === undefined || child.pid === undefined) {
        child.stdin.end(stdin);
        return;
      }
      Promise.resolve()
        .then(() => onSpawn(child.pid!))
        .then(
          () => child.stdin.end(stdin),
          (error: unknown) => {
            stop({ kind: 'hook', error });
            child.stdin.destroy();
          },
        );
    };
    if (wrapper === undefined || child.pid === undefined || !status) {
      // No wrapper, or no process: Node's 'error' says why.
      start();
      return;
    }
    status.on('data', (d: Buffer) => {
      if (reportLength <= EXEC_STATUS_BYTES) report.push(d);
      reportLength += d.length;
    });
    status.on('error', () => {}); // its end is what tells; 'close' follows
    // 'end' first: Node's own 'close' listener may emit the child's 'close'.
    status.on('end', () => hear(true));
    status.on('close', () => hear(true));
  });
}

/**
 * Runs `attempt`, and again up to `retries` times (after `delayMs`) while it
 * fails with ETXTBSY: the binary is still open for writing, typically by an
 * installer copying it in. libcni retries the same way (5 times, 1 s apart).
 */
export async function retryTextBusy<T>(
  attempt: () => Promise<T>,
  {
    retries = 5,
    delayMs = 1000,
    signal,
  }: { retries?: number; delayMs?: number; signal?: AbortSignal | undefined } = {},
): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (error) {
      const busy =
        error instanceof PluginExecError &&
        error.failure.kind === 'spawn' &&
        error.failure.error.code === 'ETXTBSY';
      if (!busy || i >= retries) throw error;
      try {
        await sleep(delayMs, undefined, signal === undefined ? {} : { signal });
      } catch {
        throw new PluginExecError({ kind: 'aborted', reason: signal?.reason });
      }
    }
  }
}

/**
 * What podnet-exec reported for plugin PATH in namespace NSPATH, as the
 * error of a process that could not be started: a failed exec as Node's
 * own (code, errno, `spawn PATH`), a failed setns with the namespace as its
 * path, a report podnet does not know as ERR_PODNET_EXEC_HELPER.
 */
export function helperStartError(
  report: Buffer,
  path: string,
  nsPath: string,
): NodeJS.ErrnoException | undefined {
  const doing = `starting CNI plugin '${path}' in network namespace '${nsPath}'`;
  const status = decodeExecStatus(report, doing);
  if (status === undefined || status instanceof PodnetError) return status;
  if (status.stage === 'exec')
    return new PodnetSystemError(doing, { errno: status.errno, syscall: `spawn ${path}`, path });
  return stageError(doing, status.stage, status.errno, nsPath);
}

/**
 * The default executor: {@link spawnPlugin} with libcni's ETXTBSY retry;
 * with `options.netns`, through podnet-exec, which joins the namespace by
 * the fd and execs the plugin in place (same pid, same process group).
 */
export const defaultExecutor: PluginExecutor = (path, stdin, env, options) => {
  const netns = options.netns;
  const attempt =
    netns === undefined
      ? () => spawnPlugin(path, stdin, env, options)
      : () =>
          spawnPlugin(
            execHelperPath(),
            stdin,
            env,
            options,
            execHelperArgv({
              statusFd: 3,
              nsFd: 4,
              joinUserns: false,
              file: path,
              argv0: path,
              args: [],
            }),
            { fds: [netns.fd], status: (report) => helperStartError(report, path, netns.path) },
          );
  return retryTextBusy(attempt, { signal: options.signal });
};
