// Helper processes of the benchmarks that run servers, proxies and clients
// of their own (bench/forward.js): the set of them to kill when the bench
// ends or is interrupted, readiness checks that start no process (from
// /proc), and their CPU accounts.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Every child process and detached process group a bench started and has
 * not seen end, so that killAll() (also from a signal handler) leaves none.
 */
export class ProcessSet {
  #children = new Set();
  #groups = new Set();

  /** Tracks CHILD until it exits; returns it. */
  add(child) {
    this.#children.add(child);
    child.on('exit', () => this.#children.delete(child));
    return child;
  }

  /** Tracks a detached child's process group (killed as a whole) until forgotten. */
  addGroup(pgid) {
    this.#groups.add(pgid);
  }

  /** Stops tracking a group once it is known to be empty. */
  deleteGroup(pgid) {
    this.#groups.delete(pgid);
  }

  /** SIGKILL to every tracked group and child. Synchronous. */
  killAll() {
    for (const pgid of this.#groups) killGroup(pgid, 'SIGKILL');
    for (const c of this.#children) c.kill('SIGKILL');
  }
}

/** Signals a process group; false once it has no process left. */
export function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Whether CHILD has exited (or was killed). */
export const hasExited = (child) => child.exitCode !== null || child.signalCode !== null;

/**
 * Resolves with CHILD once it prints "ready" on stdout, with what followed
 * on that line as `child.ready`; rejects if it exits first or after `ms`.
 */
export function whenReady(child, what, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} not ready after ${ms} ms`));
    }, ms);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /ready(.*)\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        child.ready = m[1].trim();
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code})`));
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`. */
export async function stopChild(child, ms = 5000) {
  if (hasExited(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
}

/** Polls `test` every 20 ms until it is true; throws after `ms`. */
export async function waitFor(what, test, ms) {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms`);
    await sleep(20);
  }
}

/**
 * Whether the process `pid` sees a TCP socket listening on `port` (on
 * `addr`, or any address) in its network namespace (/proc/PID/net/tcp{,6}).
 */
export function isListening(pid, port, addr) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const hexAddr = addr
    ?.split('.')
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, '0'));
  for (const table of ['tcp', 'tcp6']) {
    let text;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local?.endsWith(`:${hexPort}`)) continue;
      if (!hexAddr || (table === 'tcp' && local === `${hexAddr.join('').toUpperCase()}:${hexPort}`))
        return true;
    }
  }
  return false;
}

/**
 * CPU seconds (utime + stime, all threads) of a process from
 * /proc/PID/stat, with its reaped children's when `children` (socat's
 * forked workers).
 */
export function cpuSeconds({ pid, children }) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const own = Number(f[11]) + Number(f[12]);
    return (children ? own + Number(f[13]) + Number(f[14]) : own) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * Waits (up to 3 s) until every process of `procs` that forks workers
 * (socat) has reaped them, so that their CPU is in its account: a worker's
 * CPU moves to the parent's only when it is reaped.
 */
export async function settle(procs) {
  const busy = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '';
    } catch {
      return false;
    }
  };
  const forking = (procs ?? []).filter((p) => p.children);
  for (let i = 0; i < 150 && forking.some((p) => busy(p.pid)); i++) await sleep(20);
}
