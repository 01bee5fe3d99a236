// Benchmark of ns.spawn (README "Namespaces and link statistics"): the time
// from spawn to 'exit' of `true` run inside a namespace, beside the same
// command spawned by Node in its own namespace (the floor: a fork and exec
// with no namespace step) and through nsenter(1), which is what a Node
// program runs without podnet, in the same run; and, for an unprivileged
// user's namespace, through the UserNamespace helper's netns (user + net
// setns). As root; without root only the user namespace rows run.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds of 100 spawns
// each; the figure is the median over rounds of each round's median.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkNamespace, UserNamespace } from '../dist/index.js';
import { median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const N = 100;
const root = process.getuid?.() === 0;
const dir = root ? mkdtempSync(join(tmpdir(), 'podnet-bench-')) : undefined;
const TRUE = '/bin/true';

async function timeEach(start) {
  const out = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    const child = start();
    const [code] = await once(child, 'exit');
    if (code !== 0) throw new Error(`exit ${code}`);
    out.push(usSince(t));
  }
  return median(out);
}

const rows = new Map();
const add = (name, us) => rows.set(name, [...(rows.get(name) ?? []), us]);
const ns = dir ? await NetworkNamespace.create({ dir }) : undefined;
const userns = await UserNamespace.create();
try {
  for (let r = 0; r < ROUNDS; r++) {
    add("child_process.spawn('true'), this namespace (floor)", await timeEach(() => spawn(TRUE)));
    if (ns) {
      add("ns.spawn('true')", await timeEach(() => ns.spawn(TRUE)));
      add(
        "spawn('nsenter', ['--net=PATH', 'true'])",
        await timeEach(() => spawn('nsenter', [`--net=${ns.path}`, TRUE])),
      );
    }
    add("userns.netns.spawn('true') (user + net)", await timeEach(() => userns.netns.spawn(TRUE)));
  }
} finally {
  await userns.close();
  await ns?.remove();
  if (dir) {
    // podnet made the directory a shared bind mount of itself.
    spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const floor = median(rows.values().next().value);
const table = [...rows].map(([name, values]) => [
  name,
  `${median(values).toFixed(0)} us`,
  `${(median(values) / floor).toFixed(2)}x`,
]);
printTable(
  `spawn to exit of true, median of ${ROUNDS} round(s) of ${N}${root ? '' : ' (not root: no root rows)'}`,
  ['what', 'median', 'vs floor'],
  table,
);
console.log(JSON.stringify({ bench: 'spawn', rounds: ROUNDS, us: Object.fromEntries(table) }));
