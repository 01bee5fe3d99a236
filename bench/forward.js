// Benchmark of issue 5's port forwarder: throughput (1 and 4 streams,
// iperf3) and short connections/s from a "host" to a server inside a
// "container" namespace, through podnet's forwarder and the anchors of
// /work/shared/ANCHORS.md, rootlesskit's builtin port driver among them, in
// the same run (see bench/README.md). Run as root after `npm run build`;
// scripts/install-bench-deps.sh installs iperf3, rootlesskit and socat.
//
// Contenders times workloads times rounds. A contender
// (bench/forward/contenders/*.js) is one way from HOST to a server: its
// default export is { name, needs: [programs], start(ctx) }, and start()
// resolves to a path { from: the namespace the client runs in, to: the
// address it dials, ports: [to the Node server, to iperf3 -s], procs: the
// forwarding processes whose CPU is counted ({ pid, children }; none: no
// figure), stop() }. A workload (bench/forward/workloads/*.js) is one
// measurement through a path: { id, label, unit, digits, cpuId?, run(ctx,
// path) } resolving to { value, bytes?, extra? }; with a cpuId, the path's
// CPU over the run per Gbit received is a figure too. The context
// (bench/forward/context.js) holds the namespaces, servers and processes.
//
// Environment: BENCH_SECONDS (default 3) per measurement, BENCH_ROUNDS
// (default 1) rounds; the figure reported is the median over rounds.
// BENCH_ONLY (comma-separated, case-insensitive parts of row names) keeps
// only the rows it names (and podnet's, which every ratio is of), for
// quicker runs while tuning one contender.
import ceiling from './forward/contenders/ceiling.js';
import direct from './forward/contenders/direct.js';
import dnat from './forward/contenders/dnat.js';
import pipeProxy from './forward/contenders/pipe-proxy.js';
import podnet from './forward/contenders/podnet.js';
import podnetBaseline from './forward/contenders/podnet-baseline.js';
import podnetOneThread from './forward/contenders/podnet-one-thread.js';
import rootlesskit from './forward/contenders/rootlesskit.js';
import slirp4netns from './forward/contenders/slirp4netns.js';
import socat from './forward/contenders/socat.js';
import { BenchContext, findPrograms, SECONDS } from './forward/context.js';
import connections, { CONCURRENCY } from './forward/workloads/connections.js';
import { stream } from './forward/workloads/stream.js';
import { cpuSeconds, settle } from './lib/procs.js';
import { median, printTable } from './lib/util.js';

/** The rows, in the order of the table (and of each round). */
const CONTENDERS = [
  ceiling,
  direct,
  dnat,
  podnet,
  podnetOneThread,
  ...(process.env.PODNET_BASELINE ? [podnetBaseline] : []),
  rootlesskit,
  slirp4netns,
  pipeProxy,
  socat,
];
/** The columns. */
const WORKLOADS = [stream(1), stream(4), connections];

if (process.getuid?.() !== 0) {
  console.error('bench/forward.js: needs root (namespaces); skipped');
  process.exit(0);
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const PODNET = podnet.name;
const ROOTLESSKIT = rootlesskit.name;
/** The goal of ANCHORS.md: podnet's forwarder over rootlesskit's builtin driver, same run. */
const GOAL = { gbit1: 1.2, gbit4: 1.2, connsPerSec: 2 };
// ANCHORS.md, "Port forwarding": Gbit/s 1 stream, 4 streams, connections/s.
const ANCHORS = {
  'direct veth (no forwarding: the ceiling)': [7.6, 9.5, 9478],
  'kernel DNAT (what portmap does)': [8.9, 16.1, 7555],
  'rootlesskit 1.1 builtin port driver': [5.9, 6.5, 1943],
  'Go net + io.Copy forwarder': [4.4, 6.0, 3565],
  'slirp4netns add_hostfwd, MTU 65520': [3.4, 5.0, 4772],
  'Node 20 socket.pipe() proxy': [3.0, 2.0, 1787],
  'socat fork': [1.3, 1.9, 128],
};

const programs = findPrograms();
const install = 'scripts/install-bench-deps.sh installs it';
if (!programs.iperf3) {
  console.log(`iperf3 not found: throughput from the Node stream client instead (${install})`);
}
const only = (process.env.BENCH_ONLY ?? '')
  .toLowerCase()
  .split(',')
  .filter((w) => w !== '');
const chosen = CONTENDERS.filter(
  (c) => c === podnet || only.length === 0 || only.some((w) => c.name.toLowerCase().includes(w)),
);
const present = chosen.filter((c) => {
  const missing = c.needs.filter((p) => !programs[p]);
  if (missing.length === 0) return true;
  const what = c === rootlesskit ? 'its row and the goal are' : 'its row is';
  console.log(`${missing.join(' or ')} not found: ${what} left out (${install})`);
  return false;
});

/** Every workload through PATH once: { [workload id]: value, ...extra, [cpuId]: CPU s/Gbit }. */
async function measure(ctx, path) {
  const cpu = () => (path.procs ? path.procs.reduce((a, p) => a + cpuSeconds(p), 0) : Number.NaN);
  const figures = {};
  const cpus = {};
  for (const w of WORKLOADS) {
    await settle(path.procs);
    const c0 = cpu();
    const r = await w.run(ctx, path);
    figures[w.id] = r.value;
    Object.assign(figures, r.extra);
    if (w.cpuId) {
      await settle(path.procs);
      cpus[w.cpuId] = (cpu() - c0) / ((r.bytes * 8) / 1e9);
    }
  }
  return { ...figures, ...cpus };
}

const ctx = new BenchContext(programs);
const paths = [];
try {
  await ctx.setup();
  for (const c of present) paths.push({ name: c.name, ...(await c.start(ctx)) });
  const results = new Map(paths.map((p) => [p.name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of paths) results.get(p.name).push(await measure(ctx, p));
  }
  report(results);
} finally {
  // The orderly teardown first, last started first; cleanup() is also the
  // fallback for what it missed.
  for (const p of paths.reverse()) {
    await p.stop().catch((err) => console.error(`bench/forward.js: ${p.name}: ${err.message}`));
  }
  ctx.cleanup();
}

/** The tables, the goal line and the JSON line, from each path's per-round figures. */
function report(results) {
  const med = (name, key) => median(results.get(name).map((x) => x[key]));
  const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const withCpu = WORKLOADS.filter((w) => w.cpuId);
  const tool = programs.iperf3 ? 'iperf3' : 'the Node stream client (no iperf3)';
  printTable(
    `Port forwarding, ${SECONDS} s per figure, median of ${ROUNDS} round(s); throughput from ${tool}, ${CONCURRENCY} concurrent short connections from Node clients`,
    [
      'path',
      ...WORKLOADS.map((w) => (w.unit ? `${w.label} ${w.unit}` : w.label)),
      ...withCpu.map((w) => `CPU s/Gbit ${w.label}`),
      ...WORKLOADS.map((w) => `podnet/this ${w.label}`),
    ],
    [...results.keys()].map((name) => [
      name,
      ...WORKLOADS.map((w) => fmt(med(name, w.id), w.digits)),
      ...withCpu.map((w) => fmt(med(name, w.cpuId), 3)),
      ...WORKLOADS.map((w) => fmt(med(PODNET, w.id) / med(name, w.id))),
    ]),
  );
  if (programs.iperf3) {
    // Where the cores go: iperf3's client and server, plus the forwarding
    // processes (none for the kernel paths, whose forwarding is charged to
    // iperf3's processes). On a machine whose cores are all busy, a path's
    // throughput is about the cores over its total.
    const total = (name, w) => med(name, `iperf${w.cpuId[0].toUpperCase()}${w.cpuId.slice(1)}`);
    const whole = (name, w) =>
      total(name, w) + (Number.isFinite(med(name, w.cpuId)) ? med(name, w.cpuId) : 0);
    printTable(
      'CPU s/Gbit of the whole path: iperf3 (client + server) and the forwarding processes',
      [
        'path',
        ...withCpu.map((w) => `iperf3 ${w.label}`),
        ...withCpu.map((w) => `whole path ${w.label}`),
      ],
      [...results.keys()].map((name) => [
        name,
        ...withCpu.map((w) => fmt(total(name, w), 3)),
        ...withCpu.map((w) => fmt(whole(name, w), 3)),
      ]),
    );
  }
  printTable(
    'Anchors (ANCHORS.md, for reference: another machine, iperf3 -t 5; compare ratios, not figures)',
    ['path', '1 stream Gbit/s', '4 streams Gbit/s', 'conns/s'],
    Object.entries(ANCHORS).map(([k, v]) => [k, ...v.map(String)]),
  );
  let goal = null;
  if (results.has(ROOTLESSKIT)) {
    const ids = Object.keys(GOAL);
    const label = (id) => WORKLOADS.find((w) => w.id === id).label;
    const ratios = Object.fromEntries(ids.map((k) => [k, med(PODNET, k) / med(ROOTLESSKIT, k)]));
    const met = Object.fromEntries(ids.map((k) => [k, ratios[k] >= GOAL[k]]));
    // The same ratios within each round (the two rows are measured back to back).
    const perRound = results.get(PODNET).map((p, i) => {
      const r = results.get(ROOTLESSKIT)[i];
      return Object.fromEntries(ids.map((k) => [k, p[k] / r[k]]));
    });
    goal = {
      podnetVsRootlesskit: ratios,
      needed: GOAL,
      met: { ...met, all: Object.values(met).every(Boolean) },
      perRound,
    };
    const each = (fn) => ids.map((k) => `${label(k)} ${fn(k)}`);
    const rounds = (k) => perRound.map((r) => fmt(r[k])).join(', ');
    console.log(
      `\npodnet forwarder / rootlesskit builtin, same run: ${each((k) => `${fmt(ratios[k])}x`).join(', ')} ` +
        `(goal ${ids.map((k) => `${GOAL[k]}x`).join(', ')}: ${goal.met.all ? 'met' : 'not met'}); ` +
        `per round: ${each(rounds).join('; ')}`,
    );
  }
  // Every figure of a round, in the order measure() gives them.
  const keys = Object.keys(results.get(PODNET)[0] ?? {});
  const summary = {
    bench: 'forward',
    seconds: SECONDS,
    rounds: ROUNDS,
    throughput: programs.iperf3 ? 'iperf3' : 'node',
    results: Object.fromEntries(
      [...results.keys()].map((k) => [k, Object.fromEntries(keys.map((f) => [f, med(k, f)]))]),
    ),
    goal,
    // Every row's figures in each round, to see how far the machine's noise moves them.
    perRound: Object.fromEntries(results),
  };
  console.log(JSON.stringify(summary));
}
