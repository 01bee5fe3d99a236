// How long `podnet --help` takes against `node -e 0` (Node's own start),
// in paired runs: each round runs both, in alternating order so neither
// always gets the warmer cache, and the ratio of the medians is the figure
// (the machine is shared and noisy; only ratios within one run mean much).
// Goal: podnet --help within 1.5x of node -e 0. Also checks that --help
// does not load the native addon (no process.dlopen). Needs no root; run
// after `npm run build:ts` (bin/podnet.js imports dist/).
//
// Environment: BENCH_CLI_RUNS (default 40) rounds, after 5 warm-up rounds;
// PODNET_BASELINE_BIN=PATH (the bin/podnet.js of another build, e.g. a
// checkout of an earlier commit with its dist/ built) adds its --help to
// every round, interleaved with the others.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { benchDir, median, printTable } from './lib/util.js';

const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 40);
const WARMUP = 5;
const bin = join(benchDir, '..', 'bin', 'podnet.js');
const commands = {
  'node -e 0': ['-e', '0'],
  'node bin/podnet.js --help': [bin, '--help'],
};
const baselineBin = process.env.PODNET_BASELINE_BIN;
if (baselineBin) commands['baseline build --help'] = [baselineBin, '--help'];

/** Wall time of one run in ms; throws if it fails. */
function timed(args) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

const times = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
const names = Object.keys(commands);
for (let i = 0; i < WARMUP + RUNS; i++) {
  // Rotate the order, so each command goes first equally often.
  const order = names.map((_, j) => names[(i + j) % names.length]);
  for (const name of order) {
    const ms = timed(commands[name]);
    if (i >= WARMUP) times[name].push(ms);
  }
}

// A preload that reports every native module load on stderr.
const countDlopen =
  'data:text/javascript,const o=process.dlopen;process.dlopen=function(...a){process.stderr.write("dlopen\\n");return o.apply(this,a)}';
const probe = spawnSync(process.execPath, ['--import', countDlopen, bin, '--help'], {
  encoding: 'utf8',
});
const addonLoads = (probe.stderr.match(/^dlopen$/gm) ?? []).length;

const baseline = median(times['node -e 0']);
const help = median(times['node bin/podnet.js --help']);
const ratio = help / baseline;
printTable(
  `Startup, medians of ${RUNS} interleaved rounds (after ${WARMUP} warm-up rounds), ms`,
  ['command', 'median', 'min', 'max'],
  names.map((n) => [
    n,
    median(times[n]).toFixed(1),
    Math.min(...times[n]).toFixed(1),
    Math.max(...times[n]).toFixed(1),
  ]),
);
console.log(
  `\npodnet --help / node -e 0: ${ratio.toFixed(2)}x (goal <= 1.5x); native addon loads during --help: ${addonLoads}`,
);
const before = baselineBin ? median(times['baseline build --help']) : undefined;
if (before !== undefined)
  console.log(`baseline build --help / node -e 0: ${(before / baseline).toFixed(2)}x`);
const summary = {
  bench: 'cli',
  runs: RUNS,
  nodeMs: Number(baseline.toFixed(2)),
  helpMs: Number(help.toFixed(2)),
  ratio: Number(ratio.toFixed(3)),
  ...(before === undefined
    ? {}
    : {
        baselineMs: Number(before.toFixed(2)),
        baselineRatio: Number((before / baseline).toFixed(3)),
      }),
  addonLoads,
  ok: ratio <= 1.5 && addonLoads === 0,
};
console.log(`\n${JSON.stringify(summary)}`);
