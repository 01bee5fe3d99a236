// What slirp4netns and pasta share as child processes of podnet: each runs
// in its own process group with a private 0700 directory for its log (and
// socket or pid file), settles `exited` exactly once, emits 'exit', and is
// stopped by asking it first and killing its group after a grace period.
import { type ChildProcess, execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineStartFailure } from './errors.js';

/** How long stop() waits after asking before it kills the group, by default. */
export const DEFAULT_STOP_GRACE_MS = 2000;
/** How much of an engine's log an error carries. */
export const LOG_TAIL_BYTES = 4096;

/** How an engine process ended. */
export interface EngineExit {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  /** The signal that ended it, if any. */
  signal: NodeJS.Signals | null;
  /** True when it ended because stop() asked it to. */
  requested: boolean;
}

/** Whether Node has not yet seen the child end. */
export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Signals the child's process group (it leads one: spawned detached). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  // Only while Node has not reaped it: until then its pid, and so its group
  // id, cannot have been reused by an unrelated process.
  if (child.pid === undefined || !alive(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

/** The fields every engine handle is made with. */
export interface EngineProcessInit<B> {
  child: ChildProcess;
  exited: Promise<Omit<EngineExit, 'requested'>>;
  /** The private directory, removed by stop(). */
  dir: string;
  logPath: string;
  binary: B;
  args: readonly string[];
  /** How long stop() waits after asking before it kills the group. */
  graceMs: number;
}

/**
 * A running engine process. Subclasses say how to ask it to end
 * (askToStop); stop() does the rest.
 */
export abstract class EngineProcess<B>
  extends EventEmitter<{ exit: [EngineExit] }>
  implements AsyncDisposable
{
  /** The process id (it leads its own process group). */
  readonly pid: number;
  /** Its log file, inside the private directory; gone after stop(). */
  readonly logPath: string;
  /** The binary that runs. */
  readonly binary: B;
  /** The arguments it was started with. */
  readonly args: readonly string[];
  /** Settles (never rejects) when the process has ended. */
  readonly exited: Promise<EngineExit>;

  /** The child process. */
  protected readonly child: ChildProcess;
  readonly #dir: string;
  readonly #graceMs: number;
  #stopRequested = false;
  #stopping: Promise<EngineExit> | undefined;

  protected constructor(init: EngineProcessInit<B>) {
    super();
    this.child = init.child;
    this.pid = init.child.pid!;
    this.#dir = init.dir;
    this.logPath = init.logPath;
    this.binary = init.binary;
    this.args = init.args;
    this.#graceMs = init.graceMs;
    this.exited = init.exited.then((e) => {
      const exit = { ...e, requested: this.#stopRequested };
      this.onExit(exit);
      try {
        this.emit('exit', exit);
      } catch (err) {
        // A throwing listener must not turn `exited` into a rejection: surface
        // it as an uncaught exception, as a throw from any emitter would be.
        process.nextTick(() => {
          throw err;
        });
      }
      return exit;
    });
  }

  /** Whether stop() was called. */
  protected get stopping(): boolean {
    return this.#stopping !== undefined;
  }

  /** True until the process has ended. */
  get running(): boolean {
    return alive(this.child);
  }

  /** Asks the process to end (it may take the grace period). */
  protected abstract askToStop(): void;

  /** Called once with how it ended, before 'exit' is emitted. */
  protected onExit(_exit: EngineExit): void {}

  /**
   * Ends the process: asks it, kills its process group if it has not ended
   * within the grace period, and removes the private directory. Idempotent;
   * also fine after it died.
   */
  stop(): Promise<EngineExit> {
    this.#stopping ??= (async () => {
      if (alive(this.child)) this.#stopRequested = true;
      this.askToStop();
      const grace = new AbortController();
      const ended = await Promise.race([
        this.exited.then(() => true),
        sleep(this.#graceMs, false, { signal: grace.signal }).catch(() => false),
      ]);
      grace.abort();
      if (!ended) signalGroup(this.child, 'SIGKILL');
      const exit = await this.exited;
      await rm(this.#dir, { recursive: true, force: true });
      return exit;
    })();
    return this.#stopping;
  }

  /** stop(), for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** What a start attempt ended with, before it is turned into an error. */
export type StartOutcome = { ok: true } | { ok: false; reason: EngineStartFailure; detail: string };

/** The process facts {@link raceReady} watches besides the ready signal. */
export interface ReadyWatch {
  exited: Promise<Omit<EngineExit, 'requested'>>;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** The spawn error, if spawning failed (then 'exited' carries no status). */
  spawnError: () => Error | undefined;
}

/**
 * Waits for whichever comes first: `ready` (the engine's own ready signal),
 * the process ending (at once, not at a poll tick), the deadline, or the
 * caller's abort. `ready` gets a signal that aborts once the race is over,
 * to end its polling.
 */
export async function raceReady(
  w: ReadyWatch,
  ready: (done: AbortSignal) => Promise<StartOutcome>,
): Promise<StartOutcome> {
  const cancel = new AbortController();
  const fail = (reason: EngineStartFailure, detail: string): StartOutcome => ({
    ok: false,
    reason,
    detail,
  });
  const never = new Promise<StartOutcome>(() => undefined);
  const onExit = w.exited.then(({ code, signal }): StartOutcome => {
    const err = w.spawnError();
    if (err !== undefined) return fail('spawn', err.message);
    return signal !== null
      ? fail('killed', `it was killed by ${signal} before it was ready`)
      : fail('exited', `it exited with status ${code} before it was ready`);
  });
  const onTimeout = sleep(w.timeoutMs, undefined, { signal: cancel.signal }).then(
    () => fail('timeout', `it was not ready within ${w.timeoutMs} ms`),
    () => never,
  );
  const onAbort = new Promise<StartOutcome>((resolve) => {
    const listener = () => resolve(fail('aborted', 'aborted'));
    w.signal?.addEventListener('abort', listener, { once: true, signal: cancel.signal });
  });
  try {
    return await Promise.race([ready(cancel.signal), onExit, onTimeout, onAbort]);
  } finally {
    cancel.abort();
  }
}

/**
 * Watches a just-spawned child: call it before any await, or an 'exit'
 * that happens meanwhile is missed and `exited` never settles.
 */
export function watchExit(child: ChildProcess): {
  exited: Promise<Omit<EngineExit, 'requested'>>;
  spawnError: () => Error | undefined;
} {
  let spawnError: Error | undefined;
  const exited = new Promise<Omit<EngineExit, 'requested'>>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      spawnError = err;
      // A failed spawn emits no 'exit'.
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });
  return { exited, spawnError: () => spawnError };
}

/** How long one `--version` or `--help` run may take. */
const PROBE_TIMEOUT_MS = 5000;

/**
 * Runs an engine binary with one argument (`--version`, `--help`) and
 * returns stdout and stderr together: some print help to stderr and exit 1,
 * so the text is judged, not the status. Failing to run it at all, or a run
 * past the deadline, is `fail(detail, cause)`.
 */
export function probeOutput(
  path: string,
  arg: string,
  fail: (detail: string, cause: Error) => Error,
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      path,
      [arg],
      {
        encoding: 'utf8',
        timeout: PROBE_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 256 * 1024,
        env: { PATH: process.env['PATH'] ?? '', LC_ALL: 'C' },
      },
      (error, stdout, stderr) => {
        const e = error as (NodeJS.ErrnoException & { killed?: boolean }) | null;
        if (e !== null && (typeof e.code === 'string' || e.killed === true)) {
          reject(
            fail(
              e.killed === true ? `'${arg}' did not finish in ${PROBE_TIMEOUT_MS} ms` : e.message,
              e,
            ),
          );
          return;
        }
        resolve(`${stdout}${stderr}`);
      },
    );
  });
}
