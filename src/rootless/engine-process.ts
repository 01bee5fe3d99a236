// What slirp4netns and pasta share as child processes of podnet: the start
// sequence (a private 0700 directory for the log and socket or pid file,
// the spawn into a process group of its own, the exit watch, the race for
// the engine's ready signal, and on failure the kill, the log's tail and
// the removal of the directory), and the running handle, which settles
// `exited` exactly once, emits 'exit', and is stopped by asking it first and
// killing its group after a grace period. Each engine says only what is its
// own: its argv, its extra fds, its ready signal, how to ask it to stop.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortError } from '../errors.js';
import type { EngineName, EngineStartFailure, EngineStartInfo } from './errors.js';

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

/** What {@link startEngineProcess} needs from an engine. */
export interface EngineStart {
  /** Which engine, for messages and the directory's name. */
  engine: EngineName;
  /** The engine's binary, as its start error names it. */
  path: string;
  /** Parent of the private directory; default the OS temp dir. */
  parentDir: string | undefined;
  /** The file in the directory that takes stdout and stderr. */
  outFile: string;
  /** How long to wait for the ready signal. */
  timeoutMs: number;
  /** Aborting it while starting kills the engine and rejects with AbortError. */
  signal: AbortSignal | undefined;
  /**
   * The engine's arguments for the private directory; a program that
   * execs the engine in place, with its own arguments (`wrapper`), if any;
   * and fds to hand the engine besides stdio: fd number -> an fd of this
   * process, or 'pipe'. May throw (a bad option): the directory is then
   * removed.
   */
  command(dir: string): {
    args: string[];
    wrapper?: string[];
    fds?: Record<number, number | 'pipe'>;
  };
  /** The engine's own ready signal (see {@link raceReady}), given its directory. */
  ready(child: ChildProcess, dir: string, done: AbortSignal): Promise<StartOutcome>;
  /** The end of the engine's log, read after a failed start. */
  readLog(dir: string): Promise<string>;
  /** The engine's own start error. */
  startError(detail: string, info: EngineStartInfo, cause: unknown): Error;
  /** Publishes the outcome on a diagnostics channel, if the engine has one. */
  report?(outcome: { pid?: number; args: string[]; failure?: EngineStartFailure }): void;
}

/** A started engine: what its handle is made with. */
export interface StartedEngine {
  child: ChildProcess;
  exited: Promise<Omit<EngineExit, 'requested'>>;
  dir: string;
  /** The engine's arguments (without the binary or a wrapper). */
  args: string[];
}

/**
 * Starts an engine and resolves once it is ready: makes the private
 * directory, spawns the engine in its own process group with stdout and
 * stderr to `outFile`, watches its exit from the first moment, and races
 * the ready signal against its exit, the deadline and the caller's abort.
 * On every failure the group is killed, the log's tail read into the
 * engine's start error (an AbortError when aborted) and the directory
 * removed, so nothing is left.
 */
export async function startEngineProcess(e: EngineStart): Promise<StartedEngine> {
  const what = `starting ${e.engine}`;
  if (e.signal?.aborted) throw new AbortError(what, { cause: e.signal.reason });
  const dir = await mkdtemp(join(e.parentDir ?? tmpdir(), `podnet-${e.engine}-`));
  let args: string[];
  let argv: string[];
  let fds: Record<number, number | 'pipe'>;
  let out: Awaited<ReturnType<typeof open>>;
  try {
    let wrapper: string[];
    ({ args, wrapper = [], fds = {} } = e.command(dir));
    argv = [...wrapper, e.path, ...args];
    out = await open(join(dir, e.outFile), 'wx', 0o600);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', out.fd, out.fd];
  for (const [fd, given] of Object.entries(fds)) stdio[Number(fd)] = given;
  const child = spawn(argv[0]!, argv.slice(1), { stdio, detached: true });
  // Before any await: an early exit must not be missed.
  const { exited, spawnError } = watchExit(child);
  await out.close();
  const outcome = await raceReady(
    { exited, timeoutMs: e.timeoutMs, signal: e.signal, spawnError },
    (done) => e.ready(child, dir, done),
  );
  if (outcome.ok) {
    e.report?.({ ...(child.pid === undefined ? {} : { pid: child.pid }), args });
    return { child, exited, dir, args };
  }
  signalGroup(child, 'SIGKILL');
  const end = await exited;
  // This process's ends of the engine's pipes would keep the loop alive.
  for (const stream of child.stdio) stream?.destroy();
  const log = await e.readLog(dir);
  e.report?.({ args, failure: outcome.reason });
  await rm(dir, { recursive: true, force: true });
  if (outcome.reason === 'aborted') throw new AbortError(what, { cause: e.signal?.reason });
  throw e.startError(
    outcome.detail,
    {
      reason: outcome.reason,
      path: e.path,
      ...(child.pid === undefined ? {} : { pid: child.pid }),
      exitCode: end.code,
      signal: end.signal,
      log,
    },
    spawnError(),
  );
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
