// Benchmark of the native driver's IPAM (src/bridge/ipam.ts): one reserve +
// release, on tmpfs (/dev/shm) and on the root filesystem (/var/lib), with
// an empty network and with 100 other leases in it, compared in the same
// run with the same file operations through fs.promises
// (bench/ipam/promises-variant.js) and with the host-local plugin itself
// (ADD + DEL as libcni executes it). Run after `npm run build`; host-local
// needs no root, /var/lib does.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds; each figure is
// the median over rounds of each round's median.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { releaseAddresses, reserveAddresses } from '../dist/bridge/ipam.js';
import { native } from '../dist/native.js';
import { reserveRelease } from './ipam/promises-variant.js';
import { fmtUs, median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PER_ROUND = 200; // native and promises cycles per round and case
const HOST_LOCAL_PER_ROUND = 20;
const HOST_LOCAL = '/usr/lib/cni/host-local';
const NETWORK = 'benchnet';
const RANGES = [[{ subnet: '10.210.0.0/16' }]];

const bases = [['tmpfs', '/dev/shm']];
if (process.getuid?.() === 0) bases.push(['/var/lib', '/var/lib']);
else console.error('bench/ipam.js: not root, /var/lib skipped');

const dirs = [];
function dataDir(base, others) {
  const d = mkdtempSync(join(base, 'podnet-bench-ipam-'));
  dirs.push(d);
  const net = join(d, NETWORK);
  mkdirSync(net, { recursive: true });
  // Other containers' leases, far from where the benchmark allocates.
  for (let i = 0; i < others; i++)
    writeFileSync(join(net, `10.210.200.${i + 1}`), `other${i}\r\neth0`);
  return d;
}

async function nativeCycle(d, i, byIps) {
  const owner = { dataDir: d, network: NETWORK, containerId: `bench${i}`, ifName: 'eth0' };
  const leases = await reserveAddresses({ ...owner, ranges: RANGES });
  // byIps: teardown names the journalled addresses, so release reads only those.
  await releaseAddresses(byIps ? { ...owner, ips: leases.map((l) => l.address) } : owner);
}

let seq = 0;
async function promisesCycle(d, i) {
  // Distinct addresses, as the native allocator would go round-robin.
  const ip = `10.210.${(seq >> 8) & 127}.${seq++ & 255 || 1}`;
  await reserveRelease(
    join(d, NETWORK),
    ip,
    `bench${i}\r\neth0`,
    () => native.tryLockFile(join(d, NETWORK, 'lock')),
    (fd) => closeSync(fd),
  );
}

function hostLocalCycle(d, i) {
  const conf = JSON.stringify({
    cniVersion: '1.0.0',
    name: NETWORK,
    ipam: { type: 'host-local', dataDir: d, ranges: RANGES },
  });
  for (const command of ['ADD', 'DEL']) {
    const r = spawnSync(HOST_LOCAL, [], {
      input: conf,
      env: {
        CNI_COMMAND: command,
        CNI_CONTAINERID: `hl${i}`,
        CNI_NETNS: '/proc/self/ns/net',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
      },
    });
    if (r.status !== 0) throw new Error(`host-local ${command}: ${r.stdout}${r.stderr}`);
  }
}

async function time(n, fn) {
  const us = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    us.push(usSince(t));
  }
  return median(us);
}

const results = new Map(); // key -> per-round medians
const add = (k, v) => results.set(k, [...(results.get(k) ?? []), v]);
try {
  const cases = [];
  for (const [label, base] of bases)
    for (const others of [0, 100]) cases.push({ label, others, d: dataDir(base, others) });
  for (const c of cases) await time(50, (i) => nativeCycle(c.d, i, false)); // warm-up (JIT)
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of cases) {
      const key = `${c.label}|${c.others}`;
      add(`${key}|native`, await time(PER_ROUND, (i) => nativeCycle(c.d, i, false)));
      add(`${key}|native-ips`, await time(PER_ROUND, (i) => nativeCycle(c.d, i, true)));
      add(`${key}|promises`, await time(PER_ROUND, (i) => promisesCycle(c.d, i)));
      if (existsSync(HOST_LOCAL))
        add(`${key}|host-local`, await time(HOST_LOCAL_PER_ROUND, (i) => hostLocalCycle(c.d, i)));
    }
  }
  const m = (k) => median(results.get(k) ?? []);
  const rows = [];
  const summary = {};
  for (const [label] of bases)
    for (const others of [0, 100]) {
      const key = `${label}|${others}`;
      const [n, ni, p, h] = ['native', 'native-ips', 'promises', 'host-local'].map((x) =>
        m(`${key}|${x}`),
      );
      rows.push([label, others, fmtUs(n), fmtUs(ni), fmtUs(p), fmtUs(h), (h / n).toFixed(0)]);
      summary[`${label}_${others}_leases_us`] = {
        native_sync: Math.round(n * 10) / 10,
        native_sync_release_by_ips: Math.round(ni * 10) / 10,
        same_ops_fs_promises: Math.round(p * 10) / 10,
        host_local_exec: Math.round(h),
      };
    }
  printTable(
    `IPAM reserve + release, median (${ROUNDS} rounds x ${PER_ROUND}; host-local x ${HOST_LOCAL_PER_ROUND})`,
    [
      'fs',
      'other leases',
      'native (sync)',
      'native, release by ips',
      'same ops, fs.promises',
      'host-local ADD+DEL',
      'host-local / native',
    ],
    rows,
  );
  console.log(`\n${JSON.stringify({ ipam: summary })}`);
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
