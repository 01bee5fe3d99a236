// Benchmark of issue 11: a container's network set up and torn down by
// podnet's native driver, podnet's CNI path, netavark 1.4 (as podman drives
// it) and the CNI plugins executed directly, with 0 and 1 published TCP
// port, setup and teardown timed apart, contenders interleaved round by
// round; then 100 containers set up at once and torn down at once. All of it
// runs in a throwaway host (bench/lib/throwaway-host.js): the firewall rules
// the contenders write never reach the machine's own. Run as root after
// `npm run build`. See bench/README.md for what is timed.
//
// Environment: BENCH_ROUNDS (5) rounds of BENCH_ITER (4) cycles per
// contender and port count; BENCH_PARALLEL (100) containers in the parallel
// workload, each with BENCH_PARALLEL_PORTS (1) published ports.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  children,
  createNetns,
  NETNS_DIR,
  ownNetwork,
  PLUGIN_DIR,
  run,
  WORK_DIR,
} from './driver/context.js';
import { NETAVARK, netavarkContender } from './driver/netavark.js';
import { pluginsContender } from './driver/plugins.js';
import { podnetContender } from './driver/podnet.js';
import { enterThrowawayHost } from './lib/throwaway-host.js';
import { median, printTable } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ITER = Number(process.env.BENCH_ITER ?? 4);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 100);
const PARALLEL_PORTS = Number(process.env.BENCH_PARALLEL_PORTS ?? 1);
// After each cycle: a removed namespace is destroyed by a kernel worker
// afterwards, and that CPU should not land in the next cycle's timing.
const PAUSE_MS = 20;
const self = fileURLToPath(import.meta.url);
const dist = join(self, '..', '..', 'dist');

if (process.getuid?.() !== 0) {
  console.error('bench/driver.js: needs root (namespaces, links, firewall rules); skipped');
  process.exit(0);
}
const missing = [NETAVARK, join(PLUGIN_DIR, 'bridge'), join(dist, 'index.js')].filter(
  (f) => !existsSync(f),
);
if (missing.length) {
  console.error(
    `bench/driver.js: missing ${missing.join(', ')} (scripts/install-bench-deps.sh, npm run build)`,
  );
  process.exit(1);
}
await enterThrowawayHost(self);

const podnet = {
  ...(await import(pathToFileURL(join(dist, 'index.js')).href)),
  ...(await import(pathToFileURL(join(dist, 'cni', 'default-network.js')).href)),
};
mkdirSync(WORK_DIR, { recursive: true });

// The namespace alone: what every row below pays for it inside its figures.
const netnsOnly = {
  key: 'netns',
  name: 'namespace create + remove alone (in every row)',
  parallel: false,
  check: async () => undefined,
  resident: async () => ({}),
  setup: (() => {
    let n = 0;
    return () => createNetns(podnet, `netns-${n++}`);
  })(),
  teardown: (ns) => ns.remove(),
};
const contenders = [
  podnetContender(podnet, {
    key: 'native',
    name: "podnet native driver (driver: 'native')",
    driver: 'native',
    net: ownNetwork('native', 1),
  }),
  podnetContender(podnet, {
    key: 'cni',
    name: "podnet CNI path (driver: 'cni')",
    driver: 'cni',
    net: ownNetwork('cni', 2),
  }),
  netavarkContender(podnet, {
    key: 'netavark',
    name: 'netavark 1.4 (podman 4.3)',
    net: ownNetwork('netavark', 3),
    resident: true,
  }),
  netavarkContender(podnet, {
    key: 'alone',
    name: 'netavark 1.4, alone on its network',
    net: ownNetwork('alone', 4),
    resident: false,
  }),
  pluginsContender(podnet, {
    key: 'plugins',
    name: 'CNI plugins executed directly (floor)',
    net: ownNetwork('plugins', 5),
  }),
  netnsOnly,
];

/** Checks (outside any timing) that a resident container got an address and its port's DNAT. */
async function verify(c, { netns, port }) {
  const name = netns.slice(NETNS_DIR.length + 1);
  const addr = await run('ip', ['-n', name, '-j', 'addr', 'show', 'dev', 'eth0']);
  const addrs = JSON.parse(addr.stdout || '[]').flatMap((l) => l.addr_info.map((a) => a.local));
  if (!addrs.some((a) => a.startsWith(`${c.net.prefix}.`)))
    throw new Error(`${c.name}: eth0 in ${netns} has no address in ${c.net.subnet}: ${addrs}`);
  const rules =
    (await run('iptables-save', ['-t', 'nat'])).stdout +
    (await run('nft', ['list', 'ruleset'])).stdout;
  // The port as a word: a rule's `dport PORT` (iptables, nft) or an nft map's key.
  if (!new RegExp(`\\b${port}\\b`).test(rules))
    throw new Error(`${c.name}: no rule for host port ${port}`);
}
const unavailable = new Map();
const residents = new Map();
// Every container set up and not yet torn down (handle -> contender), for the cleanup.
const live = new Map();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    // Everything made lives in the throwaway host, which goes with this process.
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
}

const samples = new Map();
const record = (c, ports, setup, teardown) => {
  const k = `${c.key}|${ports}`;
  if (!samples.has(k)) samples.set(k, { setup: [], teardown: [], total: [] });
  const s = samples.get(k);
  s.setup.push(setup);
  s.teardown.push(teardown);
  s.total.push(setup + teardown);
};
async function cycle(c, ports, keep) {
  const t0 = performance.now();
  const h = await c.setup(ports);
  live.set(h, c);
  const t1 = performance.now();
  await c.teardown(h);
  const t2 = performance.now();
  live.delete(h);
  if (keep) record(c, ports, t1 - t0, t2 - t1);
  await sleep(PAUSE_MS);
}

const parallel = new Map();
async function parallelRun(c) {
  const t0 = performance.now();
  const results = await Promise.allSettled(
    Array.from({ length: PARALLEL }, () => c.setup(PARALLEL_PORTS)),
  );
  const setupMs = performance.now() - t0;
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  for (const h of ok) live.set(h, c);
  const failed = results.filter((r) => r.status === 'rejected');
  const t1 = performance.now();
  const down = await Promise.allSettled(ok.map((h) => c.teardown(h)));
  const teardownMs = performance.now() - t1;
  // A teardown that failed stays in `live`: the cleanup tries it again.
  ok.forEach((h, i) => {
    if (down[i].status === 'fulfilled') live.delete(h);
  });
  const downFailed = down.filter((r) => r.status === 'rejected');
  parallel.set(c.key, {
    setupMs,
    teardownMs,
    setupFailed: failed.length,
    teardownFailed: downFailed.length,
    firstError: (failed[0] ?? downFailed[0])?.reason?.message,
  });
}

let active = [];
try {
  for (const c of contenders) {
    const reason = await c.check();
    if (reason) {
      unavailable.set(c.key, reason);
      continue;
    }
    const r = await c.resident();
    if (r.reason) {
      unavailable.set(c.key, r.reason);
      continue;
    }
    if (r.handle) {
      residents.set(r.handle, c);
      await verify(c, r);
    }
  }
  active = contenders.filter((c) => !unavailable.has(c.key));
  // Warm-up: page cache, V8's compile of podnet's paths, the plugins' first runs.
  for (const ports of [0, 1]) for (const c of active) await cycle(c, ports, false);
  for (let r = 0; r < ROUNDS; r++) {
    for (const ports of [0, 1]) {
      const order = active.map((_, i) => active[(i + r) % active.length]);
      for (const c of order) for (let i = 0; i < ITER; i++) await cycle(c, ports, true);
    }
  }
  const concurrent = active.filter((c) => c.parallel);
  for (const c of concurrent) {
    await parallelRun(c);
    await sleep(500);
  }
} finally {
  for (const [h, c] of [...live, ...residents]) {
    await c.teardown(h).catch((err) => console.error(`cleanup of ${c.name}: ${err.message}`));
  }
  // The CNI bridge plugin leaves its bridge (netavark removes its own with
  // the last container); the throwaway host takes the rest.
  for (const c of contenders) if (c.net) await run('ip', ['link', 'del', c.net.bridge]);
}
// Nearest-rank p90.
const p90 = (v) => [...v].sort((a, b) => a - b)[Math.max(0, Math.ceil(v.length * 0.9) - 1)];
const ms = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : '-');
const summary = {
  bench: 'driver',
  rounds: ROUNDS,
  iter: ITER,
  ms: {},
  parallel: {},
  unavailable: {},
};
for (const ports of [0, 1]) {
  const ref = samples.get(`netavark|${ports}`);
  const rows = [];
  for (const c of contenders) {
    const s = samples.get(`${c.key}|${ports}`);
    if (!s) {
      rows.push([c.name, 'not available', '', '', '', '', '']);
      continue;
    }
    // The namespace row is a part of the others, not a contender.
    const ratio = ref && c !== netnsOnly ? median(ref.total) / median(s.total) : Number.NaN;
    rows.push([
      c.name,
      ms(median(s.setup)),
      ms(p90(s.setup)),
      ms(median(s.teardown)),
      ms(p90(s.teardown)),
      ms(median(s.total)),
      Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-',
    ]);
    summary.ms[c.key] ??= {};
    summary.ms[c.key][`ports${ports}`] = {
      setup: { median: median(s.setup), p90: p90(s.setup) },
      teardown: { median: median(s.teardown), p90: p90(s.teardown) },
      total: median(s.total),
      vsNetavark: ratio,
      n: s.total.length,
    };
  }
  printTable(
    `Container network setup / teardown, ${ports} published TCP port${ports === 1 ? '' : 's'} (${ROUNDS} rounds x ${ITER} cycles, interleaved)`,
    [
      'contender',
      'setup median',
      'setup p90',
      'teardown median',
      'teardown p90',
      'setup + teardown',
      'netavark / this',
    ],
    rows,
  );
}
const prows = [];
for (const c of contenders.filter((x) => x.parallel)) {
  const p = parallel.get(c.key);
  if (!p) {
    prows.push([c.name, 'not available', '', '']);
    continue;
  }
  summary.parallel[c.key] = p;
  prows.push([
    c.name,
    ms(p.setupMs),
    ms(p.teardownMs),
    `${p.setupFailed} / ${p.teardownFailed}${p.firstError ? ` (${p.firstError.slice(0, 120)})` : ''}`,
  ]);
}
printTable(
  `${PARALLEL} containers at once, ${PARALLEL_PORTS} published port${PARALLEL_PORTS === 1 ? '' : 's'} each: wall time of all setups, then of all teardowns`,
  ['contender', `${PARALLEL} setups`, `${PARALLEL} teardowns`, 'failed setups / teardowns'],
  prows,
);
for (const [key, reason] of unavailable) {
  summary.unavailable[key] = reason;
  console.log(`\n${contenders.find((c) => c.key === key).name}: not available: ${reason}`);
}

const native = summary.ms.native?.ports1;
const nav = summary.ms.netavark?.ports1;
const speedup = native && nav ? nav.total / native.total : undefined;
const nativePar = summary.parallel.native;
summary.goal = {
  nativeVsNetavark1Port: speedup ?? null,
  needed: 10,
  met: speedup === undefined ? null : speedup >= 10,
  parallelSetupMs: nativePar?.setupMs ?? null,
  parallelNeededMs: 1000,
  parallelMet: nativePar ? nativePar.setupMs < 1000 && nativePar.setupFailed === 0 : null,
};
console.log(
  `\ngoal: native setup + teardown with 1 port >= 10x faster than netavark: ${
    speedup === undefined
      ? 'n/a (native driver not available)'
      : `${speedup.toFixed(1)}x, ${speedup >= 10 ? 'met' : 'NOT met'}`
  }; ${PARALLEL} parallel native setups < 1 s: ${
    nativePar
      ? `${ms(nativePar.setupMs)}, ${summary.goal.parallelMet ? 'met' : 'NOT met'}`
      : 'n/a (native driver not available)'
  }`,
);
console.log(JSON.stringify(summary));
