// Benchmark of issue 5's port forwarder: throughput (1 and 4 streams,
// iperf3) and short connections/s from a "host" to a server inside a
// "container" namespace, through podnet's forwarder and the anchors of
// /work/shared/ANCHORS.md, rootlesskit's builtin port driver among them, in
// the same run (see bench/README.md). Run as root after `npm run build`;
// scripts/install-bench-deps.sh installs iperf3, rootlesskit and socat.
//
// Two namespaces made for the run: HOST (where clients and proxies run, so
// the machine's own loopback stays out of it) and CTR (the servers), joined by
// a veth. Every role is its own process (bench/lib/forward-roles.js). More
// "containers" for the anchors that need their own: CNI (bridge + host-local
// + portmap through podnet's CniRuntime, the plugins executed in HOST so that
// portmap's iptables rules and the bridge live there), SLIRP (slirp4netns,
// which runs in HOST and listens there) and rootlesskit's (its parent runs in
// HOST, its child in namespaces of its own).
//
// Environment: BENCH_SECONDS (default 3) per measurement, BENCH_ROUNDS
// (default 1) rounds; the figure reported is the median over rounds.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
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
import { spawnPlugin } from '../dist/cni/invoke/exec.js';
import { CniRuntime, NetworkNamespace } from '../dist/index.js';
import { iptablesLines, removeNewCniChains } from './lib/iptables.js';
import { median, printTable } from './lib/util.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const CONCURRENCY = 16;
const HOST_ADDR = '10.236.0.1';
const CTR_ADDR = '10.236.0.2';
/** The Node server (bench/lib/forward-roles.js): short connections, and streams without iperf3. */
const PORT = 5201;
/** iperf3 -s, beside it in every container. */
const IPERF_PORT = 5202;
/** HOST ports of each forwarding path on 127.0.0.1: [to PORT, to IPERF_PORT]. */
const HOST_PORTS = {
  podnet: [7001, 7101],
  pipe: [7002, 7102],
  socat: [7003, 7103],
  dnat: [7004, 7104],
  slirp: [7005, 7105],
  rootlesskit: [7006, 7106],
};
// A client process may take this much longer than BENCH_SECONDS before it is killed.
const CLIENT_GRACE_MS = 30_000;
const ROLE_START_MS = 30_000;
const roles = fileURLToPath(new URL('./lib/forward-roles.js', import.meta.url));
const PODNET = 'podnet forwarder';
const ROOTLESSKIT = 'rootlesskit builtin port driver';
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

if (process.getuid?.() !== 0) {
  console.error('bench/forward.js: needs root (namespaces); skipped');
  process.exit(0);
}

const has = (argv) => spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status === 0;
const hasIperf = has(['iperf3', '--version']);
const hasRootlesskit = has(['rootlesskit', '--version']) && has(['slirp4netns', '--version']);
const hasSocat = has(['socat', '-V']);
const install = 'scripts/install-bench-deps.sh installs it';
if (!hasIperf) {
  console.log(`iperf3 not found: throughput from the Node stream client instead (${install})`);
}
if (!hasRootlesskit) {
  console.log(
    `rootlesskit (or slirp4netns) not found: its row and the goal are left out (${install})`,
  );
}
if (!hasSocat) console.log(`socat not found: its row is left out (${install})`);

const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
// CNI configuration, result cache and host-local's data; slirp4netns's API
// dir; rootlesskit's state dir, subid files and log.
const work = mkdtempSync(join(tmpdir(), 'podnet-bench-fwd-'));
const children = new Set();
/** Process groups (detached children) killed as a whole: rootlesskit's. */
const groups = new Set();
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

/** Signals a process group; false once it has no process left. */
function killGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

function cleanup() {
  for (const pgid of groups) killGroup(pgid, 'SIGKILL');
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

/**
 * Whether the process `pid` sees a TCP socket listening on `port` (on
 * `addr`, or any address) in its network namespace (/proc/PID/net/tcp{,6}).
 */
function isListening(pid, port, addr) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const hexAddr = addr
    ?.split('.')
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, '0'));
  for (const table of ['tcp', 'tcp6']) {
    let text;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local?.endsWith(`:${hexPort}`)) continue;
      if (!hexAddr || (table === 'tcp' && local === `${hexAddr.join('').toUpperCase()}:${hexPort}`))
        return true;
    }
  }
  return false;
}

/** Polls `test` every 20 ms until it is true; throws after ROLE_START_MS. */
async function waitFor(what, test) {
  const deadline = Date.now() + ROLE_START_MS;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ROLE_START_MS} ms`);
    await sleep(20);
  }
}

/** `iperf3 -s` on IPERF_PORT inside NS, once it listens. */
async function startIperfServer(ns) {
  const child = spawn(
    'nsenter',
    [`--net=${ns.path}`, 'iperf3', '-s', '-p', String(IPERF_PORT), '--rcv-timeout', '10000'],
    { stdio: 'ignore' },
  );
  children.add(child);
  child.on('exit', () => children.delete(child));
  // nsenter execs iperf3: the pid is iperf3's, in NS.
  await waitFor(`iperf3 -s in ${ns.path}`, () => isListening(child.pid, IPERF_PORT));
  return child;
}

/** socat has no "ready" line: wait until its port accepts. */
async function startSocat(ns, hostPort, port) {
  const argv = [
    'socat',
    `TCP-LISTEN:${hostPort},bind=127.0.0.1,fork,reuseaddr,backlog=4096`,
    `TCP:${CTR_ADDR}:${port}`,
  ];
  const child = spawn('nsenter', [`--net=${ns.path}`, ...argv], { stdio: 'ignore' });
  children.add(child);
  child.on('exit', () => children.delete(child));
  await waitFor('socat', () => isListening(child.pid, hostPort, '127.0.0.1'));
  return child;
}

/**
 * rootlesskit 1.1 with its builtin port driver, its parent in HOST: it
 * publishes 127.0.0.1:HOSTPORT -> PORT and IPERF_PORT of its child's
 * namespace, where `sh` starts iperf3 -s and execs the Node server.
 * --net=slirp4netns gives the child its network namespace (the builtin
 * driver does not move the data through slirp4netns: the child dials
 * 127.0.0.1:PORT inside and passes the socket to the parent, which copies).
 * rootlesskit needs subuid/subgid ranges for the user it runs as, and root
 * has none here: it runs in a mount namespace of its own (unshare) where
 * files of the run's work dir are bound over /etc/subuid and /etc/subgid, so
 * the machine's files are not touched. Detached: its own process group,
 * killed as a whole. Resolves to the CPU accounts of the driver (parent and
 * child).
 */
async function startRootlesskit(host) {
  const subid = join(work, 'subid');
  writeFileSync(subid, 'root:100000:65536\n');
  const state = join(work, 'rootlesskit');
  const log = join(work, 'rootlesskit.log');
  const [toServer, toIperf] = HOST_PORTS.rootlesskit;
  const childCmd = [
    'sh',
    '-c',
    `${hasIperf ? `iperf3 -s -p ${IPERF_PORT} --rcv-timeout 10000 >/dev/null & ` : ''}exec "$@"`,
    'sh',
    process.execPath,
    roles,
    'server',
    String(PORT),
  ];
  const rootlesskit = [
    'rootlesskit',
    `--state-dir=${state}`,
    '--net=slirp4netns',
    '--disable-host-loopback',
    '--port-driver=builtin',
    `--publish=127.0.0.1:${toServer}:${PORT}/tcp`,
    `--publish=127.0.0.1:${toIperf}:${IPERF_PORT}/tcp`,
    '--pidns', // the child is init of a PID namespace: its death ends every server
    ...childCmd,
  ];
  const argv = [
    `--net=${host.path}`,
    'unshare',
    '--mount',
    '--propagation=private',
    'sh',
    '-c',
    'mount --bind "$0" /etc/subuid && mount --bind "$0" /etc/subgid && exec "$@"',
    subid,
    ...rootlesskit,
  ];
  const logFd = openSync(log, 'w');
  const child = spawn('nsenter', argv, { stdio: ['ignore', 'pipe', logFd], detached: true });
  closeSync(logFd);
  groups.add(child.pid);
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const dead = () => child.exitCode !== null || child.signalCode !== null;
  const childPid = () => {
    try {
      return Number(readFileSync(join(state, 'child_pid'), 'utf8'));
    } catch {
      return 0;
    }
  };
  try {
    await waitFor('rootlesskit', () => {
      if (dead()) throw new Error(`rootlesskit exited: ${readFileSync(log, 'utf8').trim()}`);
      return (
        out.includes('ready') &&
        childPid() > 0 &&
        (!hasIperf || isListening(childPid(), IPERF_PORT)) &&
        isListening(child.pid, toServer, '127.0.0.1') &&
        isListening(child.pid, toIperf, '127.0.0.1')
      );
    });
  } catch (err) {
    await stopRootlesskit({ pgid: child.pid, exited });
    throw err;
  }
  // nsenter, unshare and sh exec: the pid is rootlesskit's parent's.
  const comm = readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim();
  if (comm !== 'rootlesskit') throw new Error(`rootlesskit's pid is ${comm}'s`);
  return {
    pgid: child.pid,
    exited,
    cpu: [
      { pid: child.pid, children: false },
      { pid: childPid(), children: false },
    ],
  };
}

/** SIGTERM to rootlesskit's process group, SIGKILL after 5 s; then its state is gone. */
async function stopRootlesskit(rk) {
  killGroup(rk.pgid, 'SIGTERM');
  const timer = setTimeout(() => killGroup(rk.pgid, 'SIGKILL'), 5000);
  await rk.exited;
  // The group outlives its leader while its other members exit.
  for (let i = 0; i < 250 && killGroup(rk.pgid, 0); i++) await sleep(20);
  killGroup(rk.pgid, 'SIGKILL');
  clearTimeout(timer);
  groups.delete(rk.pgid);
}

/**
 * CPU seconds (utime + stime, all threads) of a process from
 * /proc/PID/stat, with its reaped children's when `children` (socat's
 * forked workers).
 */
function cpuSeconds({ pid, children }) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    const own = Number(f[11]) + Number(f[12]);
    return (children ? own + Number(f[13]) + Number(f[14]) : own) / 100;
  } catch {
    return Number.NaN;
  }
}

/** Runs ARGV inside NS, killed if it has not exited after BENCH_SECONDS + CLIENT_GRACE_MS; its stdout. */
async function runInNs(ns, argv) {
  const child = spawn('nsenter', [`--net=${ns.path}`, ...argv], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
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
  return out;
}

const NO_RESULT = { gbits: Number.NaN, bytes: Number.NaN, connsPerSec: Number.NaN };

/** One run of the Node client (bench/lib/forward-roles.js): its JSON line. */
async function runClient(ns, opts) {
  const out = await runInNs(ns, [process.execPath, roles, 'client', JSON.stringify(opts)]);
  try {
    return JSON.parse(out.trim().split('\n').pop());
  } catch {
    console.error(`bench/forward.js: no result from a client of ${opts.host}:${opts.port}`);
    return { ...NO_RESULT, failed: Number.NaN };
  }
}

/** `iperf3 -c HOST -p PORT -P STREAMS -t BENCH_SECONDS -J`: what the server received. */
async function runIperf(ns, host, port, streams) {
  const argv = ['iperf3', '-c', host, '-p', String(port), '-P', String(streams)];
  argv.push('-t', String(SECONDS), '-J', '--connect-timeout', '5000');
  const out = await runInNs(ns, argv);
  try {
    const j = JSON.parse(out);
    if (j.error) throw new Error(j.error);
    const r = j.end.sum_received;
    return { gbits: r.bits_per_second / 1e9, bytes: r.bytes };
  } catch (err) {
    console.error(`bench/forward.js: iperf3 to ${host}:${port} -P ${streams}: ${err.message}`);
    return NO_RESULT;
  }
}

/**
 * Kernel DNAT as CNI sets it up: bridge + host-local + portmap through
 * podnet's CniRuntime, the plugins executed in HOST (nsenter), so that the
 * bridge and portmap's rules are there, and CTR-like `ctrNs` is the container.
 * 127.0.0.1:hostPort in HOST is DNATed to the container's address.
 */
async function addCniNetwork(hostNs, ctrNs, [toServer, toIperf]) {
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
  const mapping = (hostPort, containerPort) => ({
    hostIP: '127.0.0.1',
    hostPort,
    containerPort,
    protocol: 'tcp',
  });
  const attachment = {
    containerId: `podnet-bench-${hex}`,
    netns: ctrNs.path,
    ifName: 'eth0',
    capabilityArgs: { portMappings: [mapping(toServer, PORT), mapping(toIperf, IPERF_PORT)] },
  };
  cniState = { hostPath: hostNs.path, bridge, iptablesBefore: iptablesLines(hostNs.path) };
  await cni.add(list, attachment);
  return { del: () => cni.del(list, attachment) };
}

/** Throughput with STREAMS streams: iperf3, or the Node stream client without it. */
function stream(clientNs, host, [toServer, toIperf], streams) {
  if (hasIperf) return runIperf(clientNs, host, toIperf, streams);
  return runClient(clientNs, { host, port: toServer, seconds: SECONDS, mode: 'stream', streams });
}

/**
 * Waits (up to 3 s) until every process of `procs` that forks workers
 * (socat) has reaped them, so that their CPU is in its account: a worker's
 * CPU moves to the parent's only when it is reaped.
 */
async function settle(procs) {
  const busy = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim() !== '';
    } catch {
      return false;
    }
  };
  const forking = (procs ?? []).filter((p) => p.children);
  for (let i = 0; i < 150 && forking.some((p) => busy(p.pid)); i++) await sleep(20);
}

/**
 * The three measurements through one path (`ports`: [to the Node server, to
 * iperf3 -s]); `procs` are the forwarding processes whose CPU is counted.
 */
async function measure(clientNs, host, ports, procs) {
  const cpu = () => (procs ? procs.reduce((a, p) => a + cpuSeconds(p), 0) : Number.NaN);
  await settle(procs);
  const c0 = cpu();
  const one = await stream(clientNs, host, ports, 1);
  await settle(procs);
  const c1 = cpu();
  const four = await stream(clientNs, host, ports, 4);
  await settle(procs);
  const c2 = cpu();
  const conns = await runClient(clientNs, {
    host,
    port: ports[0],
    seconds: SECONDS,
    mode: 'conns',
    concurrency: CONCURRENCY,
  });
  return {
    one: one.gbits,
    four: four.gbits,
    conns: conns.connsPerSec,
    failed: conns.failed,
    // CPU seconds of the forwarding process(es) per Gbit that reached the server.
    cpu1: (c1 - c0) / ((one.bytes * 8) / 1e9),
    cpu4: (c2 - c1) / ((four.bytes * 8) / 1e9),
  };
}

let cniNetwork;
let slirp;
let rootlesskit;
const mappingArgs = (ports) => [`${ports[0]}:${PORT}`, `${ports[1]}:${IPERF_PORT}`];

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
  if (hasIperf) await startIperfServer(ctr);
  const podnet = await startRole(host, [
    'podnet',
    ctr.path,
    CTR_ADDR,
    ...mappingArgs(HOST_PORTS.podnet),
  ]);
  const pipe = await startRole(host, ['pipe', ctr.path, CTR_ADDR, ...mappingArgs(HOST_PORTS.pipe)]);
  const socats = hasSocat
    ? [
        await startSocat(host, HOST_PORTS.socat[0], PORT),
        await startSocat(host, HOST_PORTS.socat[1], IPERF_PORT),
      ]
    : undefined;

  // Kernel DNAT: the server bound inside the CNI container by ns.listen.
  const cniCtr = await NetworkNamespace.create({ dir, name: 'cni' });
  namespaces.push(cniCtr);
  await cniCtr.setLinkUp('lo');
  cniNetwork = await addCniNetwork(host, cniCtr, HOST_PORTS.dnat);
  await startRole(null, ['nsserver', cniCtr.path, String(PORT)]);
  if (hasIperf) await startIperfServer(cniCtr);

  // slirp4netns: its own port handler listens on HOST 127.0.0.1:HOST_PORTS.slirp.
  const slirpCtr = await NetworkNamespace.create({ dir, name: 'slirp' });
  namespaces.push(slirpCtr);
  await slirpCtr.setLinkUp('lo');
  await startRole(slirpCtr, ['server', String(PORT)]);
  if (hasIperf) await startIperfServer(slirpCtr);
  slirp = await startRole(host, ['slirp', slirpCtr.path, work, ...mappingArgs(HOST_PORTS.slirp)]);
  const slirpProc = { pid: Number(slirp.ready), children: false };

  if (hasRootlesskit) rootlesskit = await startRootlesskit(host);

  const own = (child) => ({ pid: child.pid, children: false });
  const paths = [
    ['inside the namespace (ceiling)', () => measure(ctr, CTR_ADDR, [PORT, IPERF_PORT])],
    ['direct veth', () => measure(host, CTR_ADDR, [PORT, IPERF_PORT])],
    ['kernel DNAT (CNI portmap)', () => measure(host, '127.0.0.1', HOST_PORTS.dnat)],
    [PODNET, () => measure(host, '127.0.0.1', HOST_PORTS.podnet, [own(podnet)])],
    ...(rootlesskit
      ? [[ROOTLESSKIT, () => measure(host, '127.0.0.1', HOST_PORTS.rootlesskit, rootlesskit.cpu)]]
      : []),
    [
      'slirp4netns add_hostfwd (MTU 65520)',
      () => measure(host, '127.0.0.1', HOST_PORTS.slirp, [slirpProc]),
    ],
    ['Node pipe() proxy', () => measure(host, '127.0.0.1', HOST_PORTS.pipe, [own(pipe)])],
    ...(socats
      ? [
          [
            'socat fork',
            () =>
              measure(
                host,
                '127.0.0.1',
                HOST_PORTS.socat,
                socats.map((s) => ({ pid: s.pid, children: true })),
              ),
          ],
        ]
      : []),
  ];
  const results = new Map(paths.map(([name]) => [name, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of paths) results.get(name).push(await fn());
  }
  const med = (name, key) => median(results.get(name).map((x) => x[key]));
  const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const tool = hasIperf ? 'iperf3' : 'the Node stream client (no iperf3)';
  const rows = [...results.keys()].map((name) => [
    name,
    fmt(med(name, 'one')),
    fmt(med(name, 'four')),
    fmt(med(name, 'conns'), 0),
    fmt(med(name, 'cpu1'), 3),
    fmt(med(name, 'cpu4'), 3),
    fmt(med(PODNET, 'one') / med(name, 'one')),
    fmt(med(PODNET, 'four') / med(name, 'four')),
    fmt(med(PODNET, 'conns') / med(name, 'conns')),
  ]);
  printTable(
    `Port forwarding, ${SECONDS} s per figure, median of ${ROUNDS} round(s); throughput from ${tool}, ${CONCURRENCY} concurrent short connections from Node clients`,
    [
      'path',
      '1 stream Gbit/s',
      '4 streams Gbit/s',
      'conns/s',
      'CPU s/Gbit 1 stream',
      'CPU s/Gbit 4 streams',
      'podnet/this 1 stream',
      'podnet/this 4 streams',
      'podnet/this conns/s',
    ],
    rows,
  );
  printTable(
    'Anchors (ANCHORS.md, for reference: another machine, iperf3 -t 5; compare ratios, not figures)',
    ['path', '1 stream Gbit/s', '4 streams Gbit/s', 'conns/s'],
    Object.entries(ANCHORS).map(([k, v]) => [k, ...v.map(String)]),
  );
  let goal = null;
  if (results.has(ROOTLESSKIT)) {
    const ratio = (key) => med(PODNET, key) / med(ROOTLESSKIT, key);
    const ratios = { gbit1: ratio('one'), gbit4: ratio('four'), connsPerSec: ratio('conns') };
    const met = Object.fromEntries(Object.entries(GOAL).map(([k, v]) => [k, ratios[k] >= v]));
    // The same ratios within each round (the two rows are measured back to back).
    const perRound = results.get(PODNET).map((p, i) => {
      const r = results.get(ROOTLESSKIT)[i];
      return { gbit1: p.one / r.one, gbit4: p.four / r.four, connsPerSec: p.conns / r.conns };
    });
    goal = {
      podnetVsRootlesskit: ratios,
      needed: GOAL,
      met: { ...met, all: Object.values(met).every(Boolean) },
      perRound,
    };
    const rounds = (key) => perRound.map((r) => fmt(r[key])).join(', ');
    console.log(
      `\npodnet forwarder / rootlesskit builtin, same run: 1 stream ${fmt(ratios.gbit1)}x, ` +
        `4 streams ${fmt(ratios.gbit4)}x, conns/s ${fmt(ratios.connsPerSec)}x ` +
        `(goal 1.2x, 1.2x, 2x: ${goal.met.all ? 'met' : 'not met'}); ` +
        `per round: 1 stream ${rounds('gbit1')}; 4 streams ${rounds('gbit4')}; conns/s ${rounds('connsPerSec')}`,
    );
  }
  const summary = {
    bench: 'forward',
    seconds: SECONDS,
    rounds: ROUNDS,
    throughput: hasIperf ? 'iperf3' : 'node',
    results: Object.fromEntries(
      [...results.keys()].map((k) => [
        k,
        {
          gbit1: med(k, 'one'),
          gbit4: med(k, 'four'),
          connsPerSec: med(k, 'conns'),
          failed: med(k, 'failed'),
          cpuSecPerGbit1: med(k, 'cpu1'),
          cpuSecPerGbit4: med(k, 'cpu4'),
        },
      ]),
    ),
    goal,
  };
  console.log(JSON.stringify(summary));
} finally {
  // The orderly teardown first; cleanup() is also the fallback for what it missed.
  if (rootlesskit) await stopRootlesskit(rootlesskit).catch(() => {});
  if (slirp) await stopRole(slirp).catch(() => {});
  if (cniNetwork) {
    await cniNetwork
      .del()
      .catch((err) => console.error(`bench/forward.js: CNI DEL: ${err.message}`));
  }
  cleanup();
}
