// Benchmark of podnet/testing's clusters (README "A cluster on one
// machine"): the time to build a cluster of 3 nodes with 6 pods (2 a node,
// set up by the Debian bridge + host-local plugins inside each node) and to
// remove it, for both backends; and cross-node pod-to-pod TCP throughput
// (iperf3, one stream) through host-gw and through vxlan, beside the same
// iperf3 over one direct veth between two namespaces, in the same run.
// As root. Every namespace lives in a temp dir, every file in a temp record
// dir; traffic stays inside the namespaces the bench made.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds; BENCH_SECONDS
// (default 3) per iperf3 run. Figures are medians over the rounds.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCluster, createTopology } from '../dist/testing/index.js';
import { fmtUs, median, printTable, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
if (process.getuid?.() !== 0) {
  console.log('bench/cluster.js needs root (namespaces): skipped');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
const records = mkdtempSync(join(tmpdir(), 'podnet-bench-records-'));

// iperf3 between two hosts of ours (anything with ns and exec): Gbit/s.
async function iperf(server, client, address) {
  const srv = server.ns.spawn('iperf3', ['-s', '-1', '-B', address], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await client.exec('iperf3', ['-c', address, '-t', String(SECONDS), '-J']);
    if (r.code !== 0)
      throw new Error(`iperf3 -c ${address}: ${r.stderr || r.stdout.slice(0, 200)}`);
    return JSON.parse(r.stdout).end.sum_received.bits_per_second / 1e9;
  } finally {
    srv.kill('SIGKILL');
  }
}

const up = { 'host-gw': [], vxlan: [] };
const down = { 'host-gw': [], vxlan: [] };
const gbit = { 'direct veth': [], 'host-gw': [], vxlan: [] };
try {
  for (let r = 0; r < ROUNDS; r++) {
    {
      const t = await createTopology({ hosts: 2, link: 'pair', dir, recordDir: records });
      try {
        gbit['direct veth'].push(await iperf(t.hosts[1], t.hosts[0], t.hosts[1].address));
      } finally {
        await t.remove();
      }
    }
    for (const backend of ['host-gw', 'vxlan']) {
      const t0 = process.hrtime.bigint();
      const c = await createCluster({ nodes: 3, backend, dir, recordDir: records });
      const pods = [];
      try {
        for (const node of c.nodes)
          for (const k of [1, 2]) pods.push(await node.addPod({ name: `${node.name}-p${k}` }));
        up[backend].push(usSince(t0));
        const [a, b] = [pods[0], pods[2]];
        gbit[backend].push(await iperf(b.host, a.host, b.ip));
      } finally {
        const t1 = process.hrtime.bigint();
        await c.close();
        down[backend].push(usSince(t1));
      }
    }
  }
} finally {
  spawnSync('umount', [dir]);
  rmSync(dir, { recursive: true, force: true });
  rmSync(records, { recursive: true, force: true });
}

printTable(
  `Cluster of 3 nodes and 6 pods (median of ${ROUNDS})`,
  ['backend', 'up (nodes + 6 CNI ADDs)', 'down'],
  ['host-gw', 'vxlan'].map((b) => [b, fmtUs(median(up[b])), fmtUs(median(down[b]))]),
);
const direct = median(gbit['direct veth']);
printTable(
  `Pod to pod across nodes, iperf3 1 stream ${SECONDS} s (median of ${ROUNDS})`,
  ['path', 'Gbit/s', '÷ direct veth'],
  Object.keys(gbit).map((k) => [
    k,
    median(gbit[k]).toFixed(2),
    (median(gbit[k]) / direct).toFixed(2),
  ]),
);
console.log(
  JSON.stringify({
    bench: 'cluster',
    upMs: Object.fromEntries(Object.entries(up).map(([k, v]) => [k, median(v) / 1000])),
    downMs: Object.fromEntries(Object.entries(down).map(([k, v]) => [k, median(v) / 1000])),
    gbit: Object.fromEntries(Object.entries(gbit).map(([k, v]) => [k, median(v)])),
  }),
);
