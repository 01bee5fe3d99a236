// Detached helper processes (the keeper, the detached port forwarder): a
// small Node program started in its own process group, so it can outlive
// the process that started it. Its job comes as one line of JSON on stdin;
// it reports once on fd 3, `{ ok: true, ... }` when it runs or `{ ok: false,
// code, message }` when it could not start, and closes fd 3. Then it waits
// for a second line on stdin, the starter's confirmation that it has
// recorded the helper (in a container's journal, say): if stdin ends
// first, the starter died before anyone could find the helper again, so the
// helper stops itself (SIGTERM to itself) rather than run on unowned.
// Both sides live here.
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import {
  isPodnetErrorCode,
  isSystemErrorCode,
  type PodnetErrorCode,
  type SystemErrorCode,
} from '../error-codes.js';
import { InvalidArgumentError, type PodnetError } from '../errors.js';

/** What {@link spawnDetached} starts. */
export interface DetachedSpawnOptions<T> {
  /** The program (a compiled .js file of this package). */
  main: string;
  /** Written to its stdin as JSON. */
  job: unknown;
  /** How long to wait for its report. */
  timeoutMs: number;
  /** Given to it as fd 4 (an exit fd it watches for EOF), if any. */
  fd4?: number | 'pipe';
  /** Checks an `ok: true` report and picks what the caller needs; throws if it is wrong. */
  accept: (report: Record<string, unknown>) => T;
  /** Makes the error for a failure: the helper's own code, `code` or `timeoutCode`. */
  error: (code: PodnetErrorCode | SystemErrorCode, message: string, cause?: unknown) => PodnetError;
  /** The code of a failure that has none of its own (no report, bad report, spawn error). */
  code: PodnetErrorCode;
  /** The code when no report came within `timeoutMs`. */
  timeoutCode: PodnetErrorCode;
}

/** A started helper: its pid, what it reported, and fd 4's other end when it was 'pipe'. */
export interface DetachedStarted<T> {
  pid: number;
  report: T;
  /** This process's end of fd 4 (fd4 'pipe'); unreferenced, so it keeps nothing alive. */
  fd4?: Readable;
  /**
   * Tells the helper it has been recorded and may outlive this process.
   * Until then, this process's death makes it stop.
   */
  confirm(): void;
}

/**
 * Starts a helper and resolves once it reports that it runs. On any failure
 * (its own report, no report, a report that does not check out, the
 * timeout) its process group is killed and the promise rejects, so nothing
 * is left.
 */
export function spawnDetached<T>(opts: DetachedSpawnOptions<T>): Promise<DetachedStarted<T>> {
  const child = spawn(process.execPath, [opts.main], {
    stdio: ['pipe', 'ignore', 'ignore', 'pipe', ...(opts.fd4 === undefined ? [] : [opts.fd4])],
    detached: true,
  });
  const reportFd = child.stdio[3] as Readable;
  const fd4 =
    opts.fd4 === 'pipe' ? (child.stdio[4] as Readable & { unref?: () => void }) : undefined;
  // A helper that exits at once must not fail this process with EPIPE.
  child.stdin?.on('error', () => undefined);
  child.stdin?.write(`${JSON.stringify(opts.job)}\n`);
  return new Promise<DetachedStarted<T>>((resolve, reject) => {
    let text = '';
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      fd4?.destroy();
      child.stdin?.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(opts.error(opts.timeoutCode, `no report within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    child.on('error', (err) => fail(opts.error(opts.code, err.message, err)));
    reportFd.on('data', (d: Buffer) => {
      text += d.toString('utf8');
    });
    reportFd.on('end', () => {
      if (settled) return;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(text) as Record<string, unknown>;
      } catch {
        fail(
          opts.error(opts.code, `exited without a report (${JSON.stringify(text.slice(0, 200))})`),
        );
        return;
      }
      if (msg?.['ok'] !== true || child.pid === undefined) {
        // The report is untrusted: a code that is not podnet's or an errno name is not passed on.
        const code = msg?.['code'];
        const known = isPodnetErrorCode(code) || isSystemErrorCode(code) ? code : opts.code;
        fail(opts.error(known, String(msg?.['message'] ?? 'failed')));
        return;
      }
      let report: T;
      try {
        report = opts.accept(msg);
      } catch (err) {
        fail(opts.error(opts.code, `bad report: ${(err as Error).message}`, err));
        return;
      }
      settled = true;
      clearTimeout(timer);
      child.unref();
      fd4?.unref?.();
      // Until confirmed, stdin is what tells the helper this process lives.
      // It must not keep this process alive (a caller that never confirms
      // still exits, and the helper then stops), and a helper that ends
      // first (killed by a rollback) must not leave its pipe open here.
      const stdin = child.stdin as (Writable & { unref?: () => void }) | null;
      stdin?.unref?.();
      child.once('exit', () => stdin?.destroy());
      const confirm = (): void => {
        stdin?.end('ok\n');
      };
      resolve({ pid: child.pid, report, ...(fd4 ? { fd4 } : {}), confirm });
    });
  });
}

function report(message: object): void {
  writeSync(3, `${JSON.stringify(message)}\n`);
  closeSync(3);
}

/**
 * The helper's side: reads the job from stdin (not JSON: an
 * InvalidArgumentError), runs `start`, and reports what it returns as
 * `{ ok: true, ... }`, or the error's code (`code` when it has none) and
 * message, then exits 1. `start` sets up whatever keeps the process running.
 */
export async function runDetached(
  code: PodnetErrorCode,
  start: (job: unknown) => Promise<object>,
): Promise<void> {
  const lines = stdinLines();
  try {
    let job: unknown;
    try {
      job = JSON.parse(await lines.next());
    } catch (err) {
      throw new InvalidArgumentError('the job on stdin is not a line of JSON', { cause: err });
    }
    const started = await start(job);
    // `start` has installed its SIGTERM handler, which stops what it
    // started: a starter that is gone (the report cannot be written, or
    // stdin ends before the confirmation) makes it stop.
    const orphaned = (): void => {
      process.kill(process.pid, 'SIGTERM');
    };
    try {
      report({ ok: true, ...started });
    } catch {
      orphaned();
      return;
    }
    void lines.next().then((line) => {
      if (line !== 'ok') orphaned();
    }, orphaned);
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    try {
      report({ ok: false, code: String(e?.code ?? code), message: String(e?.message ?? err) });
    } catch {
      // The starter is gone; there is nobody to tell.
    }
    process.exit(1);
  }
}

/** Reads stdin a line at a time; `next` rejects at end of input. */
function stdinLines(): { next(): Promise<string> } {
  let buffered = '';
  let ended = false;
  const waiting: (() => void)[] = [];
  const wake = (): void => {
    for (const w of waiting.splice(0)) w();
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    buffered += d;
    wake();
  });
  process.stdin.on('end', () => {
    ended = true;
    wake();
  });
  process.stdin.on('error', () => {
    ended = true;
    wake();
  });
  return {
    async next(): Promise<string> {
      for (;;) {
        const nl = buffered.indexOf('\n');
        if (nl >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          return line;
        }
        if (ended) throw new Error('end of input');
        await new Promise<void>((r) => waiting.push(r));
      }
    },
  };
}
