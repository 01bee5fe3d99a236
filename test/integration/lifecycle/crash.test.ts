// A `podnet up` SIGKILLed anywhere in its run, then `podnet gc` (and
// `podnet down` when the container was complete): the host must equal what
// it held before, by content: namespaces, mounts, links, addresses, every
// table of iptables and ip6tables, host-local leases, the CNI cache, podnet's
// state, processes. Each case runs in a throwaway host of its own
// (test/helpers/throwaway-host.ts), so the machine's rules and other runs
// are never touched or seen. The cost of that recovery (gc's wall time) is
// printed at the end.
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture } from '../../helpers/fixtures.js';
import { PLUGIN_DIR, TEST_PREFIX, uniq } from '../../helpers/host.js';
import {
  CONF_FLAGS,
  type KillPoint,
  median,
  ok,
  type ProgressEvent,
  skipReason,
  stateOf,
  WarmHostPool,
  type WatchedRun,
  watchedPodnet,
} from '../../helpers/lifecycle-env.js';
import { type CliResult, until } from '../../helpers/process.js';
import { settledDiff, type ThrowawayHost } from '../../helpers/throwaway-host.js';

const SLOW_ADD = fixture('cni/slow-add');
const DIE_AT = fixture('network/die-at.mjs');
/** How long the slow plugin waits: far longer than the kill takes to follow its mark. */
const SLOW_SECONDS = 2;

/**
 * Wall times of the `podnet gc` that recovered a kill, each paired with a
 * second gc run right after it on the same host (nothing left to do): their
 * difference is the recovery's own cost, without node's start and the load.
 */
const gcTimes: { recovery: number; idle: number }[] = [];

/** Runs `podnet gc` in HOST and times it. */
async function timedGc(host: ThrowawayHost, flags: string[]): Promise<CliResult & { ms: number }> {
  const t0 = performance.now();
  const r = await host.podnet(['gc', ...flags, ...CONF_FLAGS]);
  return { ...r, ms: performance.now() - t0 };
}
const pool = new WarmHostPool();

// Two cases at a time on two cores; each has its own host.
const slots = (() => {
  let free = 2;
  const waiting: (() => void)[] = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (free === 0) await new Promise<void>((r) => waiting.push(r));
    else free--;
    try {
      return await fn();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else free++;
    }
  };
})();

afterAll(async () => {
  await pool.close();
  if (gcTimes.length === 0) return;
  const recovery = gcTimes.map((t) => t.recovery);
  console.log(
    `podnet gc recovering a SIGKILLed podnet up: median ${median(recovery).toFixed(0)} ms ` +
      `(min ${Math.min(...recovery).toFixed(0)}, max ${Math.max(...recovery).toFixed(0)}, ${gcTimes.length} runs); ` +
      `the gc right after it, with nothing to do: median ${median(gcTimes.map((t) => t.idle)).toFixed(0)} ms; ` +
      `recovery over idle, paired: median ${median(gcTimes.map((t) => t.recovery - t.idle)).toFixed(0)} ms ` +
      '(wall times of the CLI, node start included)',
  );
});

describe.skipIf(skipReason !== undefined)(
  'SIGKILL while a plugin of the default chain runs',
  () => {
    // [plugin the slow stand-in replaces, when it waits]; tuning 'after' is
    // "after the last plugin": the whole chain has run, podnet has not heard.
    const positions: [string, 'before' | 'after'][] = [
      ['bridge', 'before'],
      ['host-local', 'before'],
      ['portmap', 'before'],
      ['firewall', 'before'],
      ['tuning', 'before'],
      ['tuning', 'after'],
    ];

    it.concurrent.for(positions)(
      'owner killed in %s (%s its work), then gc: the host is as it was',
      // Cases wait for a slot, and that counts towards the timeout.
      { timeout: 180_000 },
      ([plugin, when], { expect, onTestFinished }) =>
        slots(async () => {
          const { host, baseline, clean } = await pool.lease(onTestFinished);
          const dir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
          onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
          symlinkSync(SLOW_ADD, join(dir, plugin));
          writeFileSync(
            join(dir, 'slow.conf'),
            `SLOW_SECONDS=${SLOW_SECONDS}\nSLOW_WHEN=${when}\n`,
          );
          const pluginFlags = ['--cni-plugin-dir', dir, '--cni-plugin-dir', PLUGIN_DIR];
          const id = `crash-${uniq()}`;

          const up = host.spawnPodnet([
            'up',
            id,
            '--driver',
            'cni',
            '-p',
            '127.0.0.1:8080:80',
            ...pluginFlags,
            ...CONF_FLAGS,
          ]);
          const exited = new Promise((r) => up.on('close', r));
          const marker = join(dir, `${plugin}.started`);
          await until(
            `${plugin} to start`,
            () => existsSync(marker) || up.exitCode !== null,
            20_000,
          );
          expect(up.exitCode, 'podnet up ended before the slow plugin ran').toBeNull();
          up.kill('SIGKILL');
          const killedAt = Date.now();
          await exited;

          const gc = await timedGc(host, pluginFlags);
          const afterGc = await settledDiff(host, baseline);
          // The killed owner's plugin may still be running: nothing it does
          // once it wakes may outlive gc either.
          await new Promise((r) =>
            setTimeout(r, Math.max(0, killedAt + SLOW_SECONDS * 1000 + 500 - Date.now())),
          );
          const later = await settledDiff(host, baseline);
          gcTimes.push({ recovery: gc.ms, idle: (await timedGc(host, pluginFlags)).ms });
          expect(
            { gcExit: gc.code, afterGc, later },
            `gc said: ${gc.stdout.trim()} ${gc.stderr.trim()}`,
          ).toEqual({ gcExit: 0, afterGc: [], later: [] });
          clean();
        }),
    );
  },
);

/**
 * Kill points over a calibrated run: two during node's start (before the
 * first event), one at each event, and the rest spread evenly in time over
 * the run, each keyed to the last event before it (so a slower run under
 * load still dies in the same stretch of work).
 */
function killPoints(events: ProgressEvent[], totalMs: number, count: number): KillPoint[] {
  const first = events[0]?.at ?? totalMs;
  const points: KillPoint[] = [
    { event: 0, ms: first * 0.3 },
    { event: 0, ms: first * 0.8 },
  ];
  for (let k = 1; k <= events.length && points.length < count; k++)
    points.push({ event: k, ms: 0 });
  const rest = count - points.length;
  for (let j = 0; j < rest; j++) {
    const at = first + ((j + 0.5) * (totalMs - first)) / rest;
    const k = events.filter((e) => e.at <= at).length;
    points.push({ event: k, ms: at - (events[k - 1]?.at ?? 0) });
  }
  return points;
}

const POINTS = 24;
/** The timed kill points are the plugin path's: its run is long enough to spread them. */
const UP_CNI = ['--driver', 'cni', '-p', '127.0.0.1:8080:80'];

describe.skipIf(skipReason !== undefined)(
  'podnet up (CNI path) SIGKILLed at 24 points of its run',
  () => {
    let calibration: WatchedRun;
    let points: KillPoint[] = [];

    beforeAll(async () => {
      const warm = await pool.acquire();
      const id = `cal-${uniq()}`;
      try {
        calibration = await watchedPodnet(warm.host, ['up', id, ...UP_CNI]);
        expect(calibration.code).toBe(0);
        await ok(warm.host, ['down', id]);
        expect(await settledDiff(warm.host, warm.baseline)).toEqual([]);
        pool.release(warm);
      } catch (err) {
        await warm.host.close();
        throw err;
      }
      points = killPoints(calibration.events, calibration.ms, POINTS);
      console.log(
        `calibration: podnet up took ${calibration.ms.toFixed(0)} ms; events at ` +
          calibration.events.map((e) => `${e.at.toFixed(0)} ${e.label}`).join(', '),
      );
    }, 60_000);

    it.concurrent.for(Array.from({ length: POINTS }, (_, i) => i))(
      'kill point %i, then gc (and down if it had finished): the host is as it was',
      { timeout: 180_000 },
      (i, { expect, onTestFinished }) =>
        slots(async () => {
          const point = points[i]!;
          const { host, baseline, clean } = await pool.lease(onTestFinished);
          const id = `kill-${i}-${uniq()}`;
          const run = await watchedPodnet(host, ['up', id, ...UP_CNI], point);
          const where = `${run.killedAfter === undefined ? 'not killed (finished first)' : `killed ${point.ms.toFixed(0)} ms after event ${point.event} (last seen: ${run.killedAfter})`}`;
          console.log(`kill point ${i}: ${where}`);
          const hadState = (await stateOf(host, id)) !== undefined;
          const gc = await timedGc(host, []);
          const state = await stateOf(host, id);
          if (run.code === 0)
            expect(state?.phase, `${where}: gc must keep a finished container`).toBe('ready');
          if (state?.phase === 'ready') {
            const down = await host.podnet(['down', id, ...CONF_FLAGS]);
            expect(down.code, `${where}: podnet down: ${down.stderr}`).toBe(0);
          }
          const diff = await settledDiff(host, baseline);
          if (run.killedAfter !== undefined && hadState)
            gcTimes.push({ recovery: gc.ms, idle: (await timedGc(host, [])).ms });
          expect(
            { gcExit: gc.code, diff },
            `${where}; gc said: ${gc.stdout.trim()} ${gc.stderr.trim()}`,
          ).toEqual({
            gcExit: 0,
            diff: [],
          });
          clean();
        }),
    );
  },
);

/**
 * The native driver's whole attach takes a few milliseconds, too short for
 * kill points in time: the process kills itself (test/fixtures/network/
 * die-at.mjs) the moment a step is published, so every step boundary of the
 * setup, the driver's included, is a case.
 */
const NATIVE_STEPS: [channel: string, phase: string][] = [
  ['podnet:network:setup', 'state'],
  ['podnet:network:setup', 'netns'],
  ['podnet:bridge:attach', 'leased'],
  ['podnet:bridge:attach', 'bridge'],
  ['podnet:bridge:attach', 'veth'],
  ['podnet:bridge:attach', 'container'],
  ['podnet:bridge:attach', 'firewall'],
  ['podnet:bridge:attach', 'cached'],
  ['podnet:network:setup', 'network:podman'],
];

describe.skipIf(skipReason !== undefined)(
  'podnet up (native driver) SIGKILLed after each step',
  () => {
    it.concurrent.for(NATIVE_STEPS)(
      'killed at %s %s, then gc: the host is as it was',
      { timeout: 120_000 },
      ([channel, phase], { expect, onTestFinished }) =>
        slots(async () => {
          const { host, baseline, clean } = await pool.lease(onTestFinished);
          const id = `native-${uniq()}`;
          const up = await host.podnet(
            [
              'up',
              id,
              '--driver',
              'native',
              '-p',
              '127.0.0.1:8080:80',
              '-p',
              '9090:90/udp',
              ...CONF_FLAGS,
            ],
            { NODE_OPTIONS: `--import=${DIE_AT}`, PODNET_TEST_DIE_AT: `${channel}#${phase}` },
          );
          // SIGKILL: no exit code (execFile reports the signal's), nothing on stderr.
          expect(up.code, `podnet up ran past ${phase}: ${up.stderr}`).not.toBe(0);
          expect(await stateOf(host, id), 'the journal').toBeDefined();
          const gc = await timedGc(host, []);
          const diff = await settledDiff(host, baseline);
          gcTimes.push({ recovery: gc.ms, idle: (await timedGc(host, [])).ms });
          expect(
            { gcExit: gc.code, diff },
            `gc said: ${gc.stdout.trim()} ${gc.stderr.trim()}`,
          ).toEqual({
            gcExit: 0,
            diff: [],
          });
          clean();
        }),
    );
  },
);
