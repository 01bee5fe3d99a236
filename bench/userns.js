// Benchmark of an unprivileged user's namespaces (UserNamespace, see
// README "Rootless networking"): what the helper costs to start and stop,
// what a socket opened inside costs through it (one request, or a batch of
// 64 as the forwarder's pool asks), and a statistics read on the kept
// netlink socket it handed over, beside the same calls on a namespace root
// enters itself, in the same run. It runs as the user it is started as (as
// root it makes the same kind of user namespace).
//
// Helper start: UserNamespace.create() until it resolves (the helper ready
// and its netns opened), then a close that is not timed. With
// PODNET_BASELINE=DIR (the dist/ of another build, e.g. main's HEAD built in
// a temp clone), the baseline's starts are interleaved with this build's in
// the same process and the ratio is printed; goal: at least 10x faster.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds; the figure is
// the median over rounds of each round's median. BENCH_STARTS (default 30)
// helper starts per build, median of all.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NetworkNamespace, UserNamespace } from '../dist/index.js';
import { median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const STARTS = Number(process.env.BENCH_STARTS ?? 30);
const GOAL = 10;
const root = process.getuid?.() === 0;
const dir = root ? mkdtempSync(join(tmpdir(), 'podnet-bench-')) : undefined;

async function timeEach(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await fn();
    out.push(usSince(start));
  }
  return median(out);
}

// Helper starts, this build's and the baseline's alternating (which goes
// first alternating too), so drift in the machine's load hits both alike.
const builds = [['this build', UserNamespace]];
if (process.env.PODNET_BASELINE) {
  const base = await import(pathToFileURL(join(process.env.PODNET_BASELINE, 'index.js')).href);
  builds.push(['baseline', base.UserNamespace]);
}
const starts = new Map(builds.map(([name]) => [name, []]));
for (let i = 0; i < STARTS; i++) {
  for (const [name, Userns] of i % 2 ? [...builds].reverse() : builds) {
    const t0 = process.hrtime.bigint();
    const u = await Userns.create();
    starts.get(name).push(usSince(t0) / 1000);
    await u.close();
  }
}
const startMs = Object.fromEntries([...starts].map(([name, v]) => [name, median(v)]));
const ratio = startMs.baseline === undefined ? null : startMs.baseline / startMs['this build'];
printTable(
  `UserNamespace helper start, median of ${STARTS} per build, interleaved`,
  ['build', 'median ms', 'min ms', 'max ms'],
  [...starts].map(([name, v]) => [
    name,
    median(v).toFixed(2),
    Math.min(...v).toFixed(2),
    Math.max(...v).toFixed(2),
  ]),
);
if (ratio !== null)
  console.log(
    `baseline / this build: ${ratio.toFixed(1)}x (goal >= ${GOAL}x: ${ratio >= GOAL ? 'met' : 'NOT met'})`,
  );

const rows = new Map();
const add = (name, us) => rows.set(name, [...(rows.get(name) ?? []), us]);
const userns = await UserNamespace.create();
const rootNs = dir ? await NetworkNamespace.create({ dir }) : undefined;
try {
  await userns.netns.setLinkUp('lo');
  await rootNs?.setLinkUp('lo');
  for (let r = 0; r < ROUNDS; r++) {
    add(
      'UserNamespace.create + close',
      await timeEach(10, async () => (await UserNamespace.create()).close()),
    );
    for (const [label, ns] of [
      ['through the helper', userns.netns],
      ['root, setns on a fresh thread', rootNs],
    ]) {
      if (!ns) continue;
      add(
        `one socket, ${label}`,
        await timeEach(200, async () => closeSync(await ns.socket({ type: 'tcp4' }))),
      );
      add(
        `64 sockets in one batch, per socket, ${label}`,
        (await timeEach(50, async () => {
          for (const fd of await ns.sockets({ type: 'tcp4', count: 64 })) closeSync(fd);
        })) / 64,
      );
      add(
        `linkStatsSync('lo'), ${label}`,
        (await timeEach(20, async () => {
          for (let i = 0; i < 1000; i++) ns.linkStatsSync('lo');
        })) / 1000,
      );
    }
  }
} finally {
  await userns.close();
  await rootNs?.remove();
  if (dir) {
    // podnet made the directory a shared bind mount of itself.
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const table = [...rows].map(([name, values]) => [name, `${median(values).toFixed(1)} us`]);
printTable(
  `UserNamespace, median of ${ROUNDS} round(s)${root ? '' : ' (not root: no root rows)'}`,
  ['what', 'median'],
  table,
);
console.log(
  JSON.stringify({
    bench: 'userns',
    rounds: ROUNDS,
    us: Object.fromEntries(table),
    start: {
      n: STARTS,
      ms: startMs,
      ratio,
      goal: GOAL,
      met: ratio === null ? null : ratio >= GOAL,
    },
  }),
);
