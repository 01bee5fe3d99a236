// `podnet exec ID -- CMD ...` and `podnet netns exec NAME -- CMD ...`: a
// command inside a namespace, with the terminal's stdio, whose exit status
// becomes podnet's (as `podman exec` and `ip netns exec` do).
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { NetworkNamespace } from '../netns/index.js';
import { describeError, UsageError } from './errors.js';
import { type FlagValues, strs } from './flags.js';

/** podnet's own failure in an exec command (podman exec's code): the command never ran. */
export const EXIT_EXEC_FAILED = 125;
/** The command was found but could not be run (EACCES, ENOEXEC), as shells say. */
export const EXIT_CANNOT_EXEC = 126;
/** The command was not found, as shells say. */
export const EXIT_NOT_FOUND = 127;

/** What follows `--` on the command line: the command and its arguments. */
export function commandAfterDashes(flags: FlagValues, usage: string): [string, string[]] {
  const [command, ...args] = strs(flags, '--');
  if (command === undefined || command === '')
    throw new UsageError(`missing command: ${usage} -- CMD [ARG...]`);
  return [command, args];
}

// Signals meant for podnet that the command should get instead. SIGINT
// from a terminal reaches the command by itself (one process group), so
// podnet only outlives it, to report the command's status.
const FORWARDED = ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

/**
 * Runs COMMAND with ARGS in NS with podnet's stdio and resolves to the exit
 * status podnet should have: the command's own, 128 + N when signal N
 * ended it (as shells report it), 127 when it was not found and 126 when
 * it could not run (the error on stderr either way). Any other failure
 * (the namespace could not be entered) is thrown: podnet's own.
 */
export async function execIn(
  ns: NetworkNamespace,
  command: string,
  args: string[],
): Promise<number> {
  // Armed before the spawn: the command may run (and be signalled) before
  // spawn() returns to this code.
  let child: ChildProcess | undefined;
  const forward = (signal: NodeJS.Signals): void => {
    child?.kill(signal);
  };
  const ignore = (): void => undefined;
  process.on('SIGINT', ignore);
  for (const s of FORWARDED) process.on(s, forward);
  try {
    child = ns.spawn(command, args, { stdio: 'inherit' });
    const running = child;
    return await new Promise<number>((resolve, reject) => {
      let failure: unknown;
      let thrown = false;
      running.once('error', (err: NodeJS.ErrnoException) => {
        failure = err;
        thrown = err.syscall !== `spawn ${command}`;
        if (thrown) reject(err);
      });
      running.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        if (thrown) return;
        if (failure !== undefined) {
          process.stderr.write(`${describeError(failure).line}\n`);
          const code = (failure as NodeJS.ErrnoException).code;
          resolve(code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
        } else if (signal !== null) resolve(128 + (constants.signals[signal] ?? 0));
        else resolve(code ?? EXIT_EXEC_FAILED);
      });
    });
  } finally {
    process.off('SIGINT', ignore);
    for (const s of FORWARDED) process.off(s, forward);
  }
}

/** `podnet exec ID -- CMD [ARG...]`: CMD inside container ID's network namespace. */
export async function exec([id = '']: string[], flags: FlagValues): Promise<number> {
  const [command, args] = commandAfterDashes(flags, `podnet exec ${id || 'ID'}`);
  const { networkingFromFlags } = await import('./context.js');
  const att = await networkingFromFlags(flags).load(id);
  try {
    return await execIn(await att.openNetns(), command, args);
  } finally {
    att.close();
  }
}
