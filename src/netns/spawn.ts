// Processes started inside a network namespace (NetworkNamespace.spawn).
//
// No thread of this process may change namespace, and a fork by libuv
// cannot be told to setns before its exec. So Node spawns podnet-exec
// (native/exec-helper.c), a small static executable that inherits the
// namespace fd, joins it (and, for an unprivileged user's namespace, its
// owning user namespace first), and execs the command in place: the
// ChildProcess Node returns is the command's own, same pid, same stdio.
//
// What the helper cannot hand back through its exit status (that setns or
// the exec failed, and why) comes over a status socket: an 8-byte record
// on failure, nothing (the close-on-exec of a successful exec) otherwise.
// Until that answer, the ChildProcess's 'spawn', 'exit' and 'close' events
// are held back, so they read as Node's own: 'spawn' only once the command
// runs, and a command that cannot run gives an 'error' (ENOENT for one not
// found, with Node's fields) before its 'exit'.
import { type ChildProcess, type SpawnOptions, type StdioOptions, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { InvalidArgumentError, PodnetError, PodnetSystemError } from '../errors.js';
import { decodeExecStatus, EXEC_STATUS_BYTES, execHelperArgv, stageError } from '../exec-helper.js';
import { execHelperPath } from '../native.js';

/** How long disposing a process waits after its killSignal before SIGKILL. */
export const SPAWN_KILL_GRACE_MS = 2_000;

/**
 * Options of `ns.spawn`: those of child_process.spawn (stdio, env, cwd,
 * signal, timeout, killSignal, argv0, uid, gid, detached, serialization),
 * with the same meaning, except `shell`: a command runs from its argv only.
 */
export type NamespaceSpawnOptions = Omit<
  SpawnOptions,
  'shell' | 'windowsHide' | 'windowsVerbatimArguments'
>;

/**
 * A process running inside a network namespace: Node's ChildProcess for
 * it (its pid is the command's), which `await using` (or a direct call of
 * `[Symbol.asyncDispose]()`) kills: its killSignal (default SIGTERM), then
 * SIGKILL after {@link SPAWN_KILL_GRACE_MS}, resolving once it has exited.
 */
export interface NamespaceProcess extends ChildProcess, AsyncDisposable {}

function checkString(value: unknown, what: string, allowEmpty = false): string {
  if (typeof value !== 'string' || (!allowEmpty && value === '') || value.includes('\0')) {
    throw new InvalidArgumentError(
      `${what} must be a ${allowEmpty ? '' : 'non-empty '}string without NUL, not ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function checkId(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= 2 ** 32 - 1)
    throw new InvalidArgumentError(`${what} must be an integer from 0 to 4294967294, not ${value}`);
  return value;
}

/** What `ns.spawn` was asked, checked: everything the helper's argv and Node's spawn need. */
export interface SpawnRequest {
  command: string;
  args: string[];
  argv0: string;
  uid: number | undefined;
  gid: number | undefined;
  /** The caller's stdio, at least three entries, as Node normalizes it. */
  stdio: Exclude<StdioOptions, string>;
  /** The rest of the options, for Node's spawn as they are. */
  options: SpawnOptions;
}

/**
 * Checks the arguments of `ns.spawn` (InvalidArgumentError on the first
 * wrong one; nothing is started): argv strings without NUL, no `shell`,
 * uid and gid 32-bit ids.
 */
export function checkSpawnRequest(command: unknown, args: unknown, options: unknown): SpawnRequest {
  const cmd = checkString(command, 'the command');
  if (args !== undefined && !Array.isArray(args))
    throw new InvalidArgumentError(`the arguments must be an array of strings, not ${typeof args}`);
  const argv = (args ?? []).map((a: unknown, i: number) => checkString(a, `argument ${i}`, true));
  if (options !== undefined && (typeof options !== 'object' || options === null))
    throw new InvalidArgumentError('the spawn options must be an object');
  const { argv0, uid, gid, stdio, shell, ...rest } = (options ?? {}) as NamespaceSpawnOptions & {
    shell?: unknown;
  };
  if (shell) {
    throw new InvalidArgumentError(
      'ns.spawn runs a command from its argv, never through a shell: drop the shell option',
    );
  }
  let list: Exclude<StdioOptions, string>;
  if (stdio === undefined) list = ['pipe', 'pipe', 'pipe'];
  else if (typeof stdio === 'string') list = [stdio, stdio, stdio];
  else if (Array.isArray(stdio)) list = [...stdio];
  else throw new InvalidArgumentError('stdio must be a string or an array, as for spawn');
  // Node's own default for entries 0 to 2 left out: a pipe.
  while (list.length < 3) list.push(undefined);
  return {
    command: cmd,
    args: argv,
    argv0: argv0 === undefined ? cmd : checkString(argv0, 'argv0', true),
    uid: checkId(uid, 'uid'),
    gid: checkId(gid, 'gid'),
    stdio: list,
    options: rest,
  };
}

/**
 * The helper's argv (after its path) for REQ, its status socket at fd
 * STATUSFD and the namespace at NSFD: see native/exec-helper.c.
 */
export function helperArgv(
  req: SpawnRequest,
  statusFd: number,
  nsFd: number,
  joinUserns: boolean,
): string[] {
  return execHelperArgv({
    statusFd,
    nsFd,
    joinUserns,
    uid: req.uid,
    gid: req.gid,
    file: req.command,
    argv0: req.argv0,
    args: req.args,
  });
}

/**
 * The error a status record reports (undefined for none: the command runs),
 * shaped as Node's spawn errors are when the exec failed (`spawn CMD`,
 * path CMD, spawnargs). The record comes from another process: a length
 * or stage podnet does not know is itself an error.
 */
export function statusError(record: Buffer, req: SpawnRequest, nsPath: string): Error | undefined {
  const doing = `starting '${req.command}' in network namespace '${nsPath}'`;
  const status = decodeExecStatus(record, doing);
  if (status === undefined || status instanceof PodnetError) return status;
  if (status.stage === 'exec') {
    return Object.assign(
      new PodnetSystemError(doing, {
        errno: status.errno,
        syscall: `spawn ${req.command}`,
        path: req.command,
      }),
      { spawnargs: req.args },
    );
  }
  return stageError(doing, status.stage, status.errno, nsPath);
}

/** Where the namespace comes from, for {@link spawnInNamespace}. */
export interface SpawnTarget {
  /** An open nsfs fd of the network namespace (podnet's; the child gets a copy). */
  fd: number;
  /** Its path, for messages. */
  path: string;
  /** Join the namespace's owning user namespace first (an unprivileged user's namespace). */
  joinUserns: boolean;
}

/**
 * Starts REQ in the namespace of TARGET through the exec helper and
 * returns its ChildProcess, with 'spawn', 'exit' and 'close' held until the
 * helper's status says whether the command runs (see the file comment).
 */
export function spawnInNamespace(target: SpawnTarget, req: SpawnRequest): NamespaceProcess {
  const helper = execHelperPath();
  const statusFd = req.stdio.length;
  // The caller's stdio keep their fd numbers in the command; the helper's
  // two fds come after them and are gone (closed, close-on-exec) by the exec.
  const stdio = [...req.stdio, 'pipe', target.fd] as Exclude<StdioOptions, string>;
  const child = spawn(helper, helperArgv(req, statusFd, statusFd + 1, target.joinUserns), {
    ...req.options,
    stdio,
  }) as NamespaceProcess;

  const held: [string | symbol, unknown[]][] = [];
  let settled = false;
  const emit = child.emit.bind(child) as (event: string | symbol, ...args: unknown[]) => boolean;
  // The caller's readable stdio (not the status socket). At the real exit
  // Node resumes every one of them on the next tick, discarding what nobody
  // reads yet ("one last chance" is the 'exit' handler); with 'exit' held,
  // that chance must come with the held 'exit' instead.
  const readable = (child.stdio.slice(0, statusFd) as (Readable | null | undefined)[]).filter(
    (st): st is Readable => st?.readable === true,
  );
  let spared = false;
  const spare = (): void => {
    spared = true;
    for (const st of readable) {
      const resume = st.resume;
      // Only a resume with nobody reading is Node's flush; one that comes
      // with a 'data' listener (on('data'), pipe) is a reader's, let through.
      st.resume = function flushLater(this: Readable) {
        if (this.listenerCount('data') + this.listenerCount('readable') === 0) return this;
        return resume.call(this);
      };
    }
  };
  const settle = (err: Error | undefined): void => {
    if (settled) return;
    settled = true;
    // 'spawn' (or the error) first; what the process did next on a later
    // turn, so code that awaits 'spawn' or 'error' and then reads stdout
    // or waits for 'exit' or 'close' sees them, as with Node's own spawn.
    const spawned = held.findIndex(([event]) => event === 'spawn');
    const [first] = spawned === -1 ? [] : held.splice(spawned, 1);
    if (err) emit('error', err);
    else if (first) emit('spawn', ...first[1]);
    setImmediate(() => {
      // Back to the prototype's emit: events flow as usual from here on.
      delete (child as { emit?: unknown }).emit;
      if (spared) for (const st of readable) delete (st as { resume?: unknown }).resume;
      for (const [event, args] of held.splice(0)) emit(event, ...args);
      // Node's flush of unread output, one tick after the 'exit' it follows.
      if (spared) {
        process.nextTick(() => {
          for (const st of readable) st.resume();
        });
      }
    });
  };
  const holdUntilExec = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'spawn' || event === 'exit' || event === 'close') {
      if (event === 'exit' && !spared) spare();
      held.push([event, args]);
      return true;
    }
    if (event === 'error' && isSpawnFailure(args[0], helper)) {
      // Node could not start the helper itself: with the helper present,
      // that is the cwd (libuv reports its chdir as the spawn's ENOENT, as
      // for any command). Told about the command, as Node's own would be.
      const e = args[0] as NodeJS.ErrnoException;
      settle(
        Object.assign(
          new PodnetSystemError(
            `starting '${req.command}' in network namespace '${target.path}'`,
            { errno: e.errno ?? -22, syscall: `spawn ${req.command}`, path: req.command },
            { cause: e },
          ),
          { spawnargs: req.args },
        ),
      );
      return true;
    }
    return emit(event, ...args);
  };
  child.emit = holdUntilExec as typeof child.emit;

  const status = child.stdio[statusFd];
  if (!status) {
    settle(undefined); // the helper was not started: Node's 'error' has said why
  } else {
    const chunks: Buffer[] = [];
    let size = 0;
    status.on('data', (d: Buffer) => {
      if (size <= EXEC_STATUS_BYTES) chunks.push(d);
      size += d.length;
    });
    status.on('error', () => undefined); // its end is what tells; 'close' follows
    status.on('close', () => settle(statusError(Buffer.concat(chunks), req, target.path)));
  }

  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => {
      if (child.pid === undefined) resolve(); // never started: nothing to wait for
    });
  });
  child[Symbol.asyncDispose] = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      child.kill(req.options.killSignal ?? 'SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_KILL_GRACE_MS);
      await exited;
      clearTimeout(timer);
    }
  };
  return child;
}

function isSpawnFailure(err: unknown, helper: string): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.syscall === `spawn ${helper}`;
}
