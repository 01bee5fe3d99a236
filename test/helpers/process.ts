// Processes for any test, unit or integration: run a command, run the
// podnet CLI, and watch pids and fds. Free of side effects and needing no
// root, so unit tests may import it (host.ts refuses to load unprivileged
// in CI).
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Runs argv (no shell) and returns stdout; rejects with stderr in the message. */
export async function run(argv: string[], opts: { input?: string } = {}): Promise<string> {
  const [cmd, ...args] = argv;
  try {
    const child = execFileP(cmd!, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (opts.input !== undefined) child.child.stdin?.end(opts.input);
    const { stdout } = await child;
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** What a command printed and how it exited. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv (no shell) to its end, in `cwd`, with `env` added to this
 * process's environment; never rejects on a non-zero exit (code -1 when it
 * did not start).
 */
export async function runResult(
  argv: string[],
  opts: { env?: Record<string, string> | undefined; cwd?: string } = {},
): Promise<CliResult> {
  const [cmd, ...args] = argv;
  try {
    const { stdout, stderr } = await execFileP(cmd!, args, {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, ...opts.env },
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? e.message,
    };
  }
}

/** Path of the podnet command (bin/podnet.js). */
export const podnetBin = new URL('../../bin/podnet.js', import.meta.url).pathname;

/** Runs the built podnet CLI (bin/podnet.js imports dist/: `npm run build:ts` first). */
export function podnet(args: string[]): Promise<CliResult> {
  return runResult([process.execPath, podnetBin, ...args]);
}

/** Whether /proc still has PID, running or as a zombie not yet reaped. */
export function pidExists(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}

/**
 * Whether PID runs and is not a zombie: an orphaned helper is reaped by
 * init, which on these machines takes up to a second.
 */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Pids of live processes in process group `pgid`. */
export function processGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state, [2] the process group; zombies are already dead.
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') out.push(Number(pid));
    } catch {
      // It exited while we looked.
    }
  }
  return out;
}

/** How many fds this process has open now (a leak shows as a count that grows). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Waits until `cond()` holds, polling every 20 ms; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (let t = 0; !cond(); t += 20) {
    if (t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
