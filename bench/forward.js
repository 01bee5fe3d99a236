// Benchmark of issue 5's port forwarder: throughput (1 and 4 streams) and
// short connections/s from a "host" to a server inside a "container"
// namespace, through podnet's forwarder and the anchors of
// /work/shared/ANCHORS.md that can run here, in the same run (see
// bench/README.md). Run as root after `npm run build`.
//
// Two namespaces made for the run: HOST (where clients and proxies run, so
// the machine's own loopback stays out of it) and CTR (the server), joined by
// a veth. Every role is its own process (bench/lib/forward-roles.js).
//
// Environment: BENCH_SECONDS (default 3) per measurement, BENCH_ROUNDS
// (default 1) rounds; the figure reported is the median over rounds.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { NetworkNamespace } from '../dist/index.js';
import { median, printTable } from './lib/util.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const CONCURRENCY = 16;
const HOST_ADDR = '10.236.0.1';
const CTR_ADDR = '10.236.0.2';
const PORT = 5201;
const roles = fileURLToPath(new URL('./lib/forward-roles.js', import.meta.url));
// ANCHORS.md, "Port forwarding": Gbit/s 1 stream, 4 streams, connections/s.
const ANCHORS = {
  rootlesskit: [5.9, 6.5, 1943],
  'Node pipe()': [3.0, 2.0, 1787],
  'socat fork': [1.3, 1.9, 128],
  'direct veth': [7.6, 9.5, 9478],
};

if (process.getuid?.() !== 0) {
  console.error('bench/forward.js: needs root (namespaces); skipped');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
const children = new Set();
const namespaces = [];

function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  for (const ns of namespaces) {
    spawnSync('umount', ['-l', ns.path]);
    rmSync(ns.path, { force: true });
  }
  // podnet makes the directory a shared bind mount of itself.
  while (spawnSync('umount', [dir]).status === 0) {}
  if (readdirSync(dir).length === 0) rmdirSync(dir);
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/** Starts `node forward-roles.js ROLE ...` inside NS (nsenter); resolves once it prints "ready". */
function startRole(ns, args, argv = [process.execPath, roles, ...args]) {
  const child = spawn('nsenter', [`--net=${ns.path}`, ...argv], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve(child);
    });
    child.on('exit', (code) => reject(new Error(`${args[0]} exited (${code})`)));
  });
}

/** socat has no "ready" line: wait until its port accepts. */
async function startSocat(ns, hostPort) {
  const argv = [
    'socat',
    `TCP-LISTEN:${hostPort},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
    `TCP:${CTR_ADDR}:${PORT}`,
  ];
  const child = spawn('nsenter', [`--net=${ns.path}`, ...argv], { stdio: 'ignore' });
  children.add(child);
  for (let i = 0; i < 100; i++) {
    const r = spawnSync('nsenter', [`--net=${ns.path}`, 'ss', '-Hltn', `sport = :${hostPort}`], {
      encoding: 'utf8',
    });
    if (r.stdout.trim()) return child;
    await sleep(20);
  }
  throw new Error('socat did not start listening');
}

/** CPU seconds of a process and its reaped children (/proc/PID/stat). */
function cpuSeconds(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function runClient(ns, opts) {
  const child = spawn(
    'nsenter',
    [`--net=${ns.path}`, process.execPath, roles, 'client', JSON.stringify(opts)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  children.add(child);
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  await new Promise((resolve) => child.on('exit', resolve));
  children.delete(child);
  return JSON.parse(out.trim().split('\n').pop());
}

/** The three measurements through one path; `proc` is the proxy whose CPU is counted. */
async function measure(clientNs, host, port, proc) {
  const base = { host, port, seconds: SECONDS };
  const cpu0 = proc ? cpuSeconds(proc.pid) : Number.NaN;
  const one = await runClient(clientNs, { ...base, mode: 'stream', streams: 1 });
  const cpu1 = proc ? cpuSeconds(proc.pid) : Number.NaN;
  const four = await runClient(clientNs, { ...base, mode: 'stream', streams: 4 });
  const conns = await runClient(clientNs, { ...base, mode: 'conns', concurrency: CONCURRENCY });
  return {
    one: one.gbits,
    four: four.gbits,
    conns: conns.connsPerSec,
    failed: conns.failed,
    // Proxy CPU (cores busy) per Gbit/s of the single stream.
    cpuPerGbit: (cpu1 - cpu0) / one.seconds / one.gbits,
  };
}

try {
  const host = await NetworkNamespace.create({ dir, name: 'host' });
  namespaces.push(host);
  const ctr = await NetworkNamespace.create({ dir, name: 'ctr' });
  namespaces.push(ctr);
  await host.addVeth('veth0', { name: 'eth0', netns: ctr });
  await host.addAddress('veth0', `${HOST_ADDR}/24`);
  await ctr.addAddress('eth0', `${CTR_ADDR}/24`);
  for (const [ns, link] of [
    [host, 'lo'],
    [host, 'veth0'],
    [ctr, 'lo'],
    [ctr, 'eth0'],
  ]) {
    await ns.setLinkUp(link);
  }
  await startRole(ctr, ['server', String(PORT)]);
  const podnet = await startRole(host, ['podnet', ctr.path, CTR_ADDR, String(PORT), '7001']);
  const pipe = await startRole(host, ['pipe', ctr.path, CTR_ADDR, String(PORT), '7002']);
  const hasSocat = spawnSync('socat', ['-V']).status === 0;
  const socat = hasSocat ? await startSocat(host, 7003) : undefined;

  const paths = [
    ['inside the namespace (ceiling)', () => measure(ctr, CTR_ADDR, PORT)],
    ['direct veth', () => measure(host, CTR_ADDR, PORT)],
    ['podnet forwarder', () => measure(host, '127.0.0.1', 7001, podnet)],
    ['Node pipe() proxy', () => measure(host, '127.0.0.1', 7002, pipe)],
    ...(socat ? [['socat fork', () => measure(host, '127.0.0.1', 7003, socat)]] : []),
  ];
  const results = new Map(paths.map(([name]) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of paths) results.get(name).push(await fn());
  }
  const med = (name, key) => median(results.get(name).map((x) => x[key]));
  const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const rows = [...results.keys()].map((name) => [
    name,
    fmt(med(name, 'one')),
    fmt(med(name, 'four')),
    fmt(med(name, 'conns'), 0),
    fmt(med(name, 'cpuPerGbit'), 3),
    fmt(med('podnet forwarder', 'one') / med(name, 'one')),
    fmt(med('podnet forwarder', 'conns') / med(name, 'conns')),
  ]);
  printTable(
    `Port forwarding, ${SECONDS} s per figure, median of ${ROUNDS} round(s), ${CONCURRENCY} concurrent short connections`,
    [
      'path',
      '1 stream Gbit/s',
      '4 streams Gbit/s',
      'conns/s',
      'proxy CPU per Gbit/s',
      'podnet/this 1 stream',
      'podnet/this conns/s',
    ],
    rows,
  );
  printTable(
    'Anchors (ANCHORS.md, another machine: compare ratios, not figures)',
    ['path', '1 stream', '4 streams', 'conns/s'],
    Object.entries(ANCHORS).map(([k, v]) => [k, ...v.map(String)]),
  );
  const p = { one: med('podnet forwarder', 'one'), conns: med('podnet forwarder', 'conns') };
  const summary = {
    bench: 'forward',
    seconds: SECONDS,
    rounds: ROUNDS,
    results: Object.fromEntries(
      [...results.keys()].map((k) => [
        k,
        {
          gbit1: med(k, 'one'),
          gbit4: med(k, 'four'),
          connsPerSec: med(k, 'conns'),
          failed: med(k, 'failed'),
        },
      ]),
    ),
    // The goal compares with rootlesskit in the same run; it cannot run here,
    // so podnet is set against the anchors that did run, with rootlesskit's
    // ratio to them on the anchor machine beside.
    goal: {
      throughputVsPipe: p.one / med('Node pipe() proxy', 'one'),
      connsVsPipe: p.conns / med('Node pipe() proxy', 'conns'),
      rootlesskitVsPipeAnchor: { throughput: 5.9 / 3.0, conns: 1943 / 1787 },
      needed: { throughputVsRootlesskit: 1.2, connsVsRootlesskit: 2 },
    },
  };
  console.log(JSON.stringify(summary));
} finally {
  cleanup();
}
