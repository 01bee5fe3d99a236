// Processes named by pid and start time together, which never name another
// process even after the pid is reused. Helper processes that outlive the
// one that started them (a keeper, a detached forwarder, slirp4netns) are
// recorded this way, so gc can find them again and never signals a stranger.
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A process's pid and start time (/proc/PID/stat field 22). */
export interface ProcessIdentity {
  pid: number;
  /** The start time, in clock ticks since boot, as /proc prints it ('' if unknown). */
  startTime: string;
}

/** The identity of a running process (startTime '' when it does not run). */
export function processIdentity(pid: number): ProcessIdentity {
  return { pid, startTime: processStat(pid)?.startTime ?? '' };
}

/** Whether the process is still running: same pid, same start time, not a zombie. */
export function processAlive(id: ProcessIdentity | undefined): boolean {
  // Not knowing (an unreadable /proc entry) is not alive either, here.
  return processStatus(id) === 'alive';
}

/**
 * Stops a process: SIGTERM, then SIGKILL to its process group (so what it
 * started goes too), or to it alone when it leads none, if it has not ended
 * within `graceMs`. A process whose identity no longer matches is left
 * alone. Resolves to whether it was signalled.
 */
export async function terminateProcess(id: ProcessIdentity, graceMs = 3000): Promise<boolean> {
  if (!processAlive(id)) return false;
  try {
    process.kill(id.pid, 'SIGTERM');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
  for (let waited = 0; waited < graceMs && processAlive(id); waited += 20) await sleep(20);
  if (processAlive(id)) {
    for (const target of [-id.pid, id.pid]) {
      try {
        process.kill(target, 'SIGKILL');
        break;
      } catch {
        // No such group (it did not lead one), or it just ended.
      }
    }
  }
  return true;
}

/**
 * What can be said for certain about a process: 'dead' only on a definite
 * answer (no such pid, another start time, a zombie); 'unknown' when /proc
 * could not be read for another reason (EMFILE, EACCES, ...), which a
 * caller deciding whether to tear something down must treat as alive.
 */
export function processStatus(id: ProcessIdentity | undefined): 'alive' | 'dead' | 'unknown' {
  if (!id) return 'dead';
  let stat: ReturnType<typeof readStat>;
  try {
    stat = readStat(id.pid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ESRCH' ? 'dead' : 'unknown';
  }
  // A zombie has ended; only its parent's wait (or init's, later) removes it.
  if (stat.startTime !== id.startTime || stat.state === 'Z' || stat.state === 'X') return 'dead';
  return 'alive';
}

/**
 * SIGKILLs what is left of the process group `leader` led (a CNI plugin and
 * what it started), and waits up to `timeoutMs` for all of it to end. A pid
 * is not reused while a group of that number has members, so a live
 * process at the leader's pid with another start time means the group is
 * long gone: nothing is signalled then. Returns whether any was signalled.
 */
export async function killProcessGroup(
  leader: ProcessIdentity,
  timeoutMs = 5000,
): Promise<boolean> {
  try {
    if (readStat(leader.pid).startTime !== leader.startTime) return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ESRCH') throw err;
  }
  if (groupMembers(leader.pid).length === 0) return false;
  try {
    process.kill(-leader.pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  for (let waited = 0; groupMembers(leader.pid).length > 0; waited += 10) {
    if (waited >= timeoutMs)
      throw new Error(`process group ${leader.pid} still runs ${timeoutMs} ms after SIGKILL`);
    await sleep(10);
  }
  return true;
}

/** Live (not zombie) processes whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readStat(Number(name));
      if (stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X')
        members.push(Number(name));
    } catch {
      // It ended while we looked.
    }
  }
  return members;
}

/** A process's argv from /proc/PID/cmdline, or undefined when it cannot be read. */
export function processArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
  } catch {
    return undefined;
  }
}

function processStat(pid: number): { state: string; startTime: string } | undefined {
  try {
    return readStat(pid);
  } catch {
    return undefined;
  }
}

function readStat(pid: number): { state: string; pgrp: number; startTime: string } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', pgrp: Number(fields[2]), startTime: fields[19] ?? '' };
}
