// Benchmark of an unprivileged user's namespaces (UserNamespace, see
// README "Rootless networking"): what the helper costs to start and stop,
// what a socket opened inside costs through it (one request, or a batch of
// 64 as the forwarder's pool asks), and a statistics read on the kept
// netlink socket it handed over, beside the same calls on a namespace root
// enters itself, in the same run. It runs as the user it is started as (as
// root it makes the same kind of user namespace).
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds; the figure is
// the median over rounds of each round's median.
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkNamespace, UserNamespace } from '../dist/index.js';
import { median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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
console.log(JSON.stringify({ bench: 'userns', rounds: ROUNDS, us: Object.fromEntries(table) }));
