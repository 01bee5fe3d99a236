// One owner per container ID, across processes: an flock on ID.lock beside
// the state file. Setup, teardown and gc take it; the kernel releases it
// when the holder dies, so a SIGKILLed setup never leaves a lock behind, and
// a lock that can be taken while a state says 'setup' proves that setup's
// process is gone. flock belongs to an open file description, so two setups
// of one ID in the same process exclude each other too.
import { closeSync, unlinkSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { PodnetError } from '../errors.js';
import { native, systemError } from '../native.js';

/** Another process (or another call in this one) holds a container's lock. */
export class ContainerBusyError extends PodnetError {
  /** The container. */
  readonly id: string;

  constructor(id: string, detail: string) {
    super('ERR_PODNET_CONTAINER_BUSY', `container '${id}' ${detail}`);
    this.id = id;
  }
}

/**
 * A held container lock. Releasing it also removes the lock file, so none
 * pile up: whoever locks next checks that the file they locked is still the
 * one at the path, and starts again if not (native tryLockFile).
 */
export interface ContainerLock {
  /** Removes the lock file and releases the lock. */
  release(): void;
}

/**
 * Tries to take the lock at `path` once: the held lock, or undefined when
 * another holder has it. The holder's pid goes into the file for the error
 * messages of those who wait (advisory only: nothing trusts it).
 */
export function tryLock(path: string): ContainerLock | undefined {
  let fd: number;
  try {
    fd = native.tryLockFile(path);
  } catch (err) {
    const e = err as { errno?: number };
    if (e.errno === constants.errno.EWOULDBLOCK) return undefined;
    throw systemError(`locking '${path}'`, err);
  }
  try {
    writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    // The pid is only for messages.
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      try {
        unlinkSync(path);
      } catch {
        // Already gone, or not ours to remove: the lock is released all the same.
      }
      closeSync(fd);
    },
  };
}

/**
 * Takes the lock at `path`, waiting up to `timeoutMs` for its holder (a
 * setup or teardown in progress) to finish; ContainerBusyError after that.
 */
export async function lock(path: string, id: string, timeoutMs: number): Promise<ContainerLock> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    const held = tryLock(path);
    if (held) return held;
    if (Date.now() >= deadline)
      throw new ContainerBusyError(id, `is being set up or torn down by another process (${path})`);
    await sleep(wait);
  }
}
