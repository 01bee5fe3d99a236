// What the lifecycle tests share: a throwaway host that has already run a
// container with each driver (so the bridge, portmap's and firewall's shared
// chains and podnet's nftables table exist, as on any host that ran podnet once) with its snapshot, the flags every
// command gets, and a `podnet up` whose progress (NODE_DEBUG=podnet: one
// line per diagnostics event) can be watched and cut short with SIGKILL.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { isRoot, PLUGIN_DIR, uniq } from './host.js';
import { reportSkip } from './skip.js';
import { type HostSnapshot, type ThrowawayHost, throwawayHost } from './throwaway-host.js';

const TOOLS = ['/usr/bin/unshare', '/usr/bin/nsenter', '/usr/sbin/ip6tables-save'];
const PLUGINS = ['bridge', 'host-local', 'portmap', 'firewall', 'tuning'];

const missingTool = [...TOOLS, ...PLUGINS.map((p) => join(PLUGIN_DIR, p))].find(
  (t) => !existsSync(t),
);
/** Why these tests cannot run here, or undefined. */
export const skipReason = reportSkip(
  'the lifecycle tests',
  !isRoot ? 'they need root' : missingTool === undefined ? undefined : `${missingTool} is missing`,
);

/**
 * Given to every command: an empty config dir inside the host, so the
 * embedded default network is used whatever the real /etc/cni holds. Every
 * other path is podnet's default, private to the host.
 */
export const CONF_FLAGS = ['--cni-config-dir', '/run/podnet-test-net.d'];

const BARRIER = new URL('./start-barrier.mjs', import.meta.url).pathname;
const CLI_MODULE = new URL('../../dist/cli/index.js', import.meta.url).pathname;

/**
 * Environment that has a podnet process load the CLI, then wait until MS
 * from now before running it: processes started together then race from
 * one instant (give MS enough for all of them to load).
 */
export function startTogether(ms: number): Record<string, string> {
  return {
    NODE_OPTIONS: `--import=${BARRIER}`,
    PODNET_TEST_PRELOAD: CLI_MODULE,
    PODNET_TEST_START_AT: String(Date.now() + ms),
  };
}

/** A host that has run one container, and what it held after. */
export interface WarmHost {
  host: ThrowawayHost;
  baseline: HostSnapshot;
}

/** Runs `podnet ARGS` in HOST and fails the test unless it exits 0. */
export async function ok(host: ThrowawayHost, args: string[]): Promise<string> {
  const r = await host.podnet([...args, ...CONF_FLAGS]);
  expect(r.stderr, `podnet ${args.join(' ')}`).toBe('');
  expect(r.code, `podnet ${args.join(' ')}`).toBe(0);
  return r.stdout;
}

/** Makes a throwaway host and runs one container in it up and down. */
export async function warmHost(): Promise<WarmHost> {
  const host = await throwawayHost();
  try {
    // Both drivers: each leaves what it shares between containers (the
    // bridge, the plugins' chains, podnet's nftables table).
    for (const driver of ['cni', 'native']) {
      const id = `warm-${uniq()}`;
      await ok(host, ['up', id, '--driver', driver, '-p', '127.0.0.1:8080:80']);
      await ok(host, ['down', id]);
    }
    await ok(host, ['gc']);
    return { host, baseline: await host.snapshot() };
  } catch (err) {
    await host.close();
    throw err;
  }
}

/**
 * Warm hosts for reuse: a case hands its host back only when it ended equal
 * to its baseline, so the next case starts from a known host without paying
 * for another warm-up; a host a case left dirty is closed.
 */
export class WarmHostPool {
  readonly #idle: WarmHost[] = [];

  /** A warm host: an idle one, else a new one. */
  async acquire(): Promise<WarmHost> {
    return this.#idle.pop() ?? (await warmHost());
  }

  /**
   * A warm host for one test: back to the pool when the test calls
   * `clean()` (it found the host equal to its baseline), else closed.
   */
  async lease(
    onTestFinished: (fn: () => Promise<void>) => void,
  ): Promise<WarmHost & { clean(): void }> {
    const warm = await this.acquire();
    let clean = false;
    onTestFinished(async () => {
      if (clean) this.release(warm);
      else await warm.host.close();
    });
    return {
      ...warm,
      clean: () => {
        clean = true;
      },
    };
  }

  /** Hands back a host found equal to its baseline. */
  release(warm: WarmHost): void {
    this.#idle.push(warm);
  }

  /** Closes every idle host. */
  async close(): Promise<void> {
    await Promise.all(this.#idle.splice(0).map((w) => w.host.close()));
  }
}

/** One diagnostics event of a watched run, at ms since spawn. */
export interface ProgressEvent {
  at: number;
  /** Channel, with the setup phase or plugin and command when the event has one. */
  label: string;
}

/** When to SIGKILL a watched run: MS after its EVENT-th event (0: after spawn). */
export interface KillPoint {
  event: number;
  ms: number;
}

/** How a watched run ended. */
export interface WatchedRun {
  events: ProgressEvent[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** Wall time from spawn to exit, ms. */
  ms: number;
  /** The last event seen before the kill ('start' when none), or undefined when not killed. */
  killedAfter?: string;
}

const HEADER = /^PODNET \d+: (podnet:[a-z]+:[a-z]+)/;

/** Labels of the events in NODE_DEBUG=podnet output (each event one header line and its object). */
function parseEvents(text: string): string[] {
  const labels: string[] = [];
  for (const line of text.split('\n')) {
    const h = HEADER.exec(line);
    if (h) {
      labels.push(h[1]!);
      continue;
    }
    const detail = /^\s*(phase|plugin|command): '([^']*)'/.exec(line);
    if (detail && labels.length) labels[labels.length - 1] += ` ${detail[2]}`;
  }
  return labels;
}

/**
 * Runs `podnet ARGS` in HOST with NODE_DEBUG=podnet, recording when each
 * event line arrives (Node writes stderr to a pipe synchronously, so lines
 * arrive as they happen); with KILL, sends SIGKILL at that point.
 */
export function watchedPodnet(
  host: ThrowawayHost,
  args: string[],
  kill?: KillPoint,
): Promise<WatchedRun> {
  const child: ChildProcess = host.spawnPodnet([...args, ...CONF_FLAGS], {
    NODE_DEBUG: 'podnet',
  });
  const t0 = performance.now();
  const events: ProgressEvent[] = [];
  let stderr = '';
  let stdout = '';
  let killedAfter: string | undefined;
  let armed = false;
  const arm = (): void => {
    if (!kill || armed) return;
    armed = true;
    setTimeout(() => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      killedAfter = parseEvents(stderr).at(-1) ?? 'start';
      child.kill('SIGKILL');
    }, kill.ms);
  };
  if (kill?.event === 0) arm();
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    const at = performance.now() - t0;
    const labels = parseEvents(stderr);
    for (let i = events.length; i < labels.length; i++) events.push({ at, label: labels[i]! });
    // Labels fill in as the object's lines arrive.
    labels.forEach((l, i) => {
      events[i]!.label = l;
    });
    if (kill && events.length >= kill.event) arm();
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) =>
      resolve({
        events,
        code,
        signal,
        stdout,
        ms: performance.now() - t0,
        ...(killedAfter === undefined ? {} : { killedAfter }),
      }),
    );
  });
}

/** The state file of ID in HOST, parsed, or undefined. */
export async function stateOf(
  host: ThrowawayHost,
  id: string,
): Promise<{ phase?: string; netnsPath?: string } | undefined> {
  try {
    return JSON.parse(await readFile(host.path(`/run/podnet/${id}.json`), 'utf8'));
  } catch {
    return undefined;
  }
}

/** Whether PATH is an nsfs mount in HOST's mount namespace. */
export async function nsfsMounted(host: ThrowawayHost, path: string): Promise<boolean> {
  const info = await readFile(`/proc/${host.pid}/mountinfo`, 'utf8');
  return info.split('\n').some((l) => {
    const f = l.split(' ');
    return f[4] === path && f[f.indexOf('-') + 1] === 'nsfs';
  });
}

/** Median of a list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor(s.length / 2)]!;
}

/** Runs TASKS with at most LIMIT at once, results in order. */
export async function limited<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}
