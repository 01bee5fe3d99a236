// Benchmark of issue 5's port forwarder: throughput (1 and 4 streams) and
// short connections/s from a "host" to a server inside a "container"
// namespace, through podnet's forwarder and the anchors of
// /work/shared/ANCHORS.md that can run here, in the same run (see
// bench/README.md). Run as root after `npm run build`.
//
// Two namespaces made for the run: HOST (where clients and proxies run, so
// the machine's own loopback stays out of it) and CTR (the server), joined by
// a veth. Every role is its own process (bench/lib/forward-roles.js). Two
// more "containers" for the anchors that need their own: CNI (bridge +
// host-local + portmap through podnet's CniRuntime, the plugins executed in
// HOST so that portmap's iptables rules and the bridge live there) and SLIRP
// (slirp4netns, which runs in HOST and listens there).
//
// Environment: BENCH_SECONDS (default 3) per measurement, BENCH_ROUNDS
// (default 1) rounds; the figure reported is the median over rounds.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CniRuntime, NetworkNamespace, spawnPlugin } from '../dist/index.js';
import { iptablesLines, removeNewCniChains } from './lib/iptables.js';
import { median, printTable } from './lib/util.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const CONCURRENCY = 16;
const HOST_ADDR = '10.236.0.1';
const CTR_ADDR = '10.236.0.2';
const PORT = 5201;
const DNAT_PORT = 7004;
const SLIRP_PORT = 7005;
// A client process may take this much longer than BENCH_SECONDS before it is killed.
const CLIENT_GRACE_MS = 30_000;
const ROLE_START_MS = 30_000;
const roles = fileURLToPath(new URL('./lib/forward-roles.js', import.meta.url));
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

if (process.getuid?.() !== 0) {
  console.error('bench/forward.js: needs root (namespaces); skipped');
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
// CNI configuration, result cache and host-local's data; slirp4netns's API dir.
const work = mkdtempSync(join(tmpdir(), 'podnet-bench-fwd-'));
const children = new Set();
const namespaces = [];
/** The CNI attachment while it may exist: what its teardown needs. */
let cniState;

/**
 * After cni.del (or instead of it, on a signal): the bridge, and portmap's
 * chains if this run made them. Synchronous, idempotent.
 */
function cleanupCniHost() {
  if (cniState === undefined) return;
  const { hostPath, bridge, iptablesBefore } = cniState;
  cniState = undefined;
  spawnSync('nsenter', [`--net=${hostPath}`, 'ip', 'link', 'del', bridge], { stdio: 'ignore' });
  removeNewCniChains(iptablesBefore, hostPath);
}

function cleanup() {
  for (const c of children) c.kill('SIGKILL');
  cleanupCniHost();
  for (const ns of namespaces) {
    spawnSync('umount', ['-l', ns.path]);
    rmSync(ns.path, { force: true });
  }
  // podnet makes the directory a shared bind mount of itself.
  while (spawnSync('umount', [dir]).status === 0) {}
  if (readdirSync(dir).length === 0) rmdirSync(dir);
  rmSync(work, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

/**
 * Starts `node forward-roles.js ROLE ...` inside NS (nsenter; where this
 * process is when NS is null); resolves once it prints "ready", with what
 * followed on that line as `child.ready`.
 */
function startRole(ns, args, argv = [process.execPath, roles, ...args]) {
  const full = ns ? ['nsenter', `--net=${ns.path}`, ...argv] : argv;
  const child = spawn(full[0], full.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} not ready after ${ROLE_START_MS} ms`));
    }, ROLE_START_MS);
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
      reject(new Error(`${args[0]} exited (${code})`));
    });
  });
}

/** SIGTERM, then SIGKILL if it has not exited within `ms`. */
async function stopRole(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(timer);
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
  // Bounded: a path that stalls costs at most CLIENT_GRACE_MS more, and reads as '-'.
  const timer = setTimeout(() => child.kill('SIGKILL'), SECONDS * 1000 + CLIENT_GRACE_MS);
  await new Promise((resolve) => child.on('exit', resolve));
  clearTimeout(timer);
  children.delete(child);
  try {
    return JSON.parse(out.trim().split('\n').pop());
  } catch {
    console.error(`bench/forward.js: no result from a client of ${opts.host}:${opts.port}`);
    return { gbits: Number.NaN, seconds: Number.NaN, connsPerSec: Number.NaN, failed: Number.NaN };
  }
}

/**
 * Kernel DNAT as CNI sets it up: bridge + host-local + portmap through
 * podnet's CniRuntime, the plugins executed in HOST (nsenter), so that the
 * bridge and portmap's rules are there, and CTR-like `ctrNs` is the container.
 * 127.0.0.1:hostPort in HOST is DNATed to the container's address.
 */
async function addCniNetwork(hostNs, ctrNs, hostPort) {
  const hex = randomBytes(4).toString('hex');
  const bridge = `pnb${hex.slice(0, 4)}`;
  const name = `podnet-bench-fwd-${hex}`;
  const confDir = join(work, 'conf');
  mkdirSync(confDir);
  const third = 1 + Math.floor(Math.random() * 254);
  writeFileSync(
    join(confDir, `${name}.conflist`),
    JSON.stringify({
      cniVersion: '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            dataDir: join(work, 'ipam'),
            ranges: [[{ subnet: `10.235.${third}.0/24` }]],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  const cni = new CniRuntime({
    pluginDirs: ['/usr/lib/cni'],
    confDir,
    cacheDir: join(work, 'cache'),
    defaultNetwork: null,
    timeoutMs: 30_000,
    executor: (path, stdin, env, options) =>
      spawnPlugin('nsenter', stdin, env, options, [`--net=${hostNs.path}`, path]),
  });
  const list = await cni.loadNetwork(name);
  const attachment = {
    containerId: `podnet-bench-${hex}`,
    netns: ctrNs.path,
    ifName: 'eth0',
    capabilityArgs: {
      portMappings: [{ hostIP: '127.0.0.1', hostPort, containerPort: PORT, protocol: 'tcp' }],
    },
  };
  cniState = { hostPath: hostNs.path, bridge, iptablesBefore: iptablesLines(hostNs.path) };
  await cni.add(list, attachment);
  return { del: () => cni.del(list, attachment) };
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

let cniNetwork;
let slirp;

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

  // Kernel DNAT: the server bound inside the CNI container by ns.listen.
  const cniCtr = await NetworkNamespace.create({ dir, name: 'cni' });
  namespaces.push(cniCtr);
  await cniCtr.setLinkUp('lo');
  cniNetwork = await addCniNetwork(host, cniCtr, DNAT_PORT);
  await startRole(null, ['nsserver', cniCtr.path, String(PORT)]);

  // slirp4netns: its own port handler listens on HOST 127.0.0.1:SLIRP_PORT.
  const slirpCtr = await NetworkNamespace.create({ dir, name: 'slirp' });
  namespaces.push(slirpCtr);
  await slirpCtr.setLinkUp('lo');
  await startRole(slirpCtr, ['server', String(PORT)]);
  slirp = await startRole(host, ['slirp', slirpCtr.path, String(SLIRP_PORT), String(PORT), work]);
  const slirpProc = { pid: Number(slirp.ready) };

  const paths = [
    ['inside the namespace (ceiling)', () => measure(ctr, CTR_ADDR, PORT)],
    ['direct veth', () => measure(host, CTR_ADDR, PORT)],
    ['kernel DNAT (CNI portmap)', () => measure(host, '127.0.0.1', DNAT_PORT)],
    ['podnet forwarder', () => measure(host, '127.0.0.1', 7001, podnet)],
    [
      'slirp4netns add_hostfwd (MTU 65520)',
      () => measure(host, '127.0.0.1', SLIRP_PORT, slirpProc),
    ],
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
    'Anchors (ANCHORS.md, for reference: another machine, iperf3; compare ratios, not figures)',
    ['path', '1 stream Gbit/s', '4 streams Gbit/s', 'conns/s'],
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
      throughputVsSlirp: p.one / med('slirp4netns add_hostfwd (MTU 65520)', 'one'),
      connsVsSlirp: p.conns / med('slirp4netns add_hostfwd (MTU 65520)', 'conns'),
      rootlesskitVsSlirpAnchor: { throughput: 5.9 / 3.4, conns: 1943 / 4772 },
      needed: { throughputVsRootlesskit: 1.2, connsVsRootlesskit: 2 },
    },
  };
  console.log(JSON.stringify(summary));
} finally {
  // The orderly teardown first; cleanup() is also the fallback for what it missed.
  if (slirp) await stopRole(slirp).catch(() => {});
  if (cniNetwork) {
    await cniNetwork
      .del()
      .catch((err) => console.error(`bench/forward.js: CNI DEL: ${err.message}`));
  }
  cleanup();
}
