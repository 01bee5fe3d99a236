// What every contender and workload of bench/forward.js shares: the two
// namespaces of the run (HOST, where the clients and the proxies run, so the
// machine's own loopback stays out of it, and CTR, the servers), joined by a
// veth, the servers in CTR, the run's temp dirs, and every process the run
// starts. All of it goes in cleanup(), also on SIGINT/SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetworkNamespace } from '../../dist/index.js';
import { isListening, ProcessSet, waitFor, whenReady } from '../lib/procs.js';

/** Seconds per measurement (BENCH_SECONDS, default 3). */
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const HOST_ADDR = '10.236.0.1';
/** The address of CTR's end of the veth, where its servers listen. */
export const CTR_ADDR = '10.236.0.2';
/** The Node server (bench/lib/forward-roles.js): short connections, and streams without iperf3. */
export const PORT = 5201;
/** iperf3 -s, beside it in every container. */
export const IPERF_PORT = 5202;
/** The role processes: bench/lib/forward-roles.js. */
export const ROLES = fileURLToPath(new URL('../lib/forward-roles.js', import.meta.url));
// A client process may take this much longer than BENCH_SECONDS before it is killed.
const CLIENT_GRACE_MS = 30_000;
/** How long a role or server may take to be ready before the run fails. */
export const ROLE_START_MS = 30_000;

/** The programs a contender or workload may need, and how to ask each for its version. */
const PROGRAMS = {
  iperf3: ['--version'],
  rootlesskit: ['--version'],
  slirp4netns: ['--version'],
  socat: ['-V'],
};

/** Which of PROGRAMS run here: { iperf3: true, ... }. */
export function findPrograms() {
  return Object.fromEntries(
    Object.entries(PROGRAMS).map(([name, args]) => [
      name,
      spawnSync(name, args, { stdio: 'ignore' }).status === 0,
    ]),
  );
}

/** 'HOSTPORT:PORT' arguments of a proxy role: [to PORT, to IPERF_PORT]. */
export const mappingArgs = ([toServer, toIperf]) => [
  `${toServer}:${PORT}`,
  `${toIperf}:${IPERF_PORT}`,
];

/** The run: its namespaces, temp dirs and processes. */
export class BenchContext {
  /** Processes started for the run. */
  procs = new ProcessSet();
  /** Where podnet makes the run's namespaces. */
  dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
  /**
   * Contenders' files: CNI configuration, result cache and host-local's
   * data; slirp4netns's API dir; rootlesskit's state dir, subid files and log.
   */
  work = mkdtempSync(join(tmpdir(), 'podnet-bench-fwd-'));
  #namespaces = [];
  #cleanups = [];
  #cleanedUp = false;

  /** PROGRAMS found (findPrograms()); `programs.iperf3` picks the throughput client. */
  constructor(programs) {
    this.programs = programs;
    for (const sig of ['SIGINT', 'SIGTERM']) {
      process.on(sig, () => {
        this.cleanup();
        process.exit(130);
      });
    }
  }

  /** Makes HOST and CTR, the veth between them, and CTR's servers. */
  async setup() {
    const host = await this.createNamespace('host');
    const ctr = await this.createNamespace('ctr');
    this.host = host;
    this.ctr = ctr;
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
    await this.startServers(ctr);
  }

  /** A namespace of the run (in `dir`), removed by cleanup(). */
  async createNamespace(name) {
    const ns = await NetworkNamespace.create({ dir: this.dir, name });
    this.#namespaces.push(ns);
    return ns;
  }

  /** The Node server on PORT and, with iperf3, `iperf3 -s` on IPERF_PORT, inside NS. */
  async startServers(ns) {
    await this.startRole(ns, ['server', String(PORT)]);
    if (this.programs.iperf3) await this.startIperfServer(ns);
  }

  /**
   * Starts `node forward-roles.js ROLE ...` inside NS (nsenter; where this
   * process is when NS is null), with ENV added to this process's
   * environment (and ROLES_FILE, another checkout's forward-roles.js, in
   * place of this one's); resolves once it prints "ready", with what
   * followed on that line as `child.ready`.
   */
  startRole(ns, args, env = {}, rolesFile = ROLES) {
    const argv = [process.execPath, rolesFile, ...args];
    const full = ns ? ['nsenter', `--net=${ns.path}`, ...argv] : argv;
    const child = spawn(full[0], full.slice(1), {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    return whenReady(this.procs.add(child), args[0], ROLE_START_MS);
  }

  /** `iperf3 -s` on IPERF_PORT inside NS, once it listens. */
  async startIperfServer(ns) {
    const argv = ['iperf3', '-s', '-p', String(IPERF_PORT), '--rcv-timeout', '10000'];
    const child = this.procs.add(
      spawn('nsenter', [`--net=${ns.path}`, ...argv], { stdio: 'ignore' }),
    );
    // nsenter execs iperf3: the pid is iperf3's, in NS.
    await waitFor(
      `iperf3 -s in ${ns.path}`,
      () => isListening(child.pid, IPERF_PORT),
      ROLE_START_MS,
    );
    return child;
  }

  /** Runs ARGV inside NS, killed if it has not exited after BENCH_SECONDS + CLIENT_GRACE_MS; its stdout. */
  async runInNs(ns, argv) {
    const child = spawn('nsenter', [`--net=${ns.path}`, ...argv], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.procs.add(child);
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    // Bounded: a path that stalls costs at most CLIENT_GRACE_MS more, and reads as '-'.
    const timer = setTimeout(() => child.kill('SIGKILL'), SECONDS * 1000 + CLIENT_GRACE_MS);
    await new Promise((resolve) => child.on('exit', resolve));
    clearTimeout(timer);
    return out;
  }

  /** One run of the Node client (bench/lib/forward-roles.js) in NS: its JSON line, or null. */
  async runClient(ns, opts) {
    const out = await this.runInNs(ns, [process.execPath, ROLES, 'client', JSON.stringify(opts)]);
    try {
      return JSON.parse(out.trim().split('\n').pop());
    } catch {
      console.error(`bench/forward.js: no result from a client of ${opts.host}:${opts.port}`);
      return null;
    }
  }

  /** FN runs in cleanup() (synchronously, also on a signal): a contender's last resort. */
  onCleanup(fn) {
    this.#cleanups.push(fn);
  }

  /** Kills what is left, runs the onCleanup functions, removes namespaces and temp dirs. */
  cleanup() {
    if (this.#cleanedUp) return;
    this.#cleanedUp = true;
    this.procs.killAll();
    for (const fn of this.#cleanups.splice(0)) fn();
    for (const ns of this.#namespaces.splice(0)) {
      spawnSync('umount', ['-l', ns.path]);
      rmSync(ns.path, { force: true });
    }
    // podnet makes the directory a shared bind mount of itself.
    while (spawnSync('umount', [this.dir]).status === 0) {}
    if (readdirSync(this.dir).length === 0) rmdirSync(this.dir);
    rmSync(this.work, { recursive: true, force: true });
  }
}
