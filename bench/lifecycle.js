// What the crash-safe lifecycle costs: a full Networking setup + teardown
// cycle on a bridge network with the default chain (bridge, host-local,
// portmap, firewall, tuning), 0 and 1 published port, and podnet's own time
// in it (the cycle less the time its plugin processes ran: the lock,
// planning, undo; the journal entry each plugin waits for before it gets
// its config counts as plugin time there, so compare the totals of two
// builds for what the journal costs). With PODNET_BASELINE=DIR (the dist/ of
// another build, e.g. a checkout of an earlier commit), the baseline's
// cycles run interleaved with this build's, in the same run, each round in
// a fresh child process. Run as root after `npm run build`.
//
// Environment: BENCH_ROUNDS (default 5) rounds of BENCH_ITER (default 6)
// cycles per variant and port count.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { iptablesLines, removeNewCniChains } from './lib/iptables.js';
import { defaultChain } from './lib/networks.js';
import { median, printTable } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ITER = Number(process.env.BENCH_ITER ?? 6);
const self = fileURLToPath(import.meta.url);

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3]));
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error('bench/lifecycle.js: needs root (namespaces, links, iptables); skipped');
  process.exit(0);
}

// One round: ITER cycles; prints per-cycle total and plugin time (ms) as JSON.
async function child({ dist, conf, stateDir, netnsDir, cacheDir, network, ports }) {
  const dc = await import('node:diagnostics_channel');
  const { Networking, CniRuntime } = await import(pathToFileURL(join(dist, 'index.js')).href);
  let pluginMs = 0;
  dc.subscribe('podnet:cni:exec', (m) => {
    pluginMs += m.durationMs;
  });
  const net = new Networking({
    cni: new CniRuntime({ confDir: conf, cacheDir }),
    stateDir,
    netnsDir,
    defaultNetwork: network,
  });
  const out = [];
  for (let i = 0; i < ITER; i++) {
    const portMappings = ports
      ? [
          {
            hostIP: '127.0.0.1',
            hostPort: 30000 + (process.pid % 1000) * 10 + i,
            containerPort: 80,
          },
        ]
      : [];
    pluginMs = 0;
    const t0 = performance.now();
    const a = await net.setup({ id: `bench-${process.pid}-${i}`, name: 'b', portMappings });
    const setupMs = performance.now() - t0;
    const setupPlugins = pluginMs;
    pluginMs = 0;
    const t1 = performance.now();
    await a.teardown();
    const teardownMs = performance.now() - t1;
    out.push({
      setupMs,
      setupOwn: setupMs - setupPlugins,
      teardownMs,
      teardownOwn: teardownMs - pluginMs,
    });
  }
  process.stdout.write(JSON.stringify(out));
}

const root = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
// State and namespaces on tmpfs, as podnet's defaults are (/run).
const run = mkdtempSync('/run/podnet-bench-');
const id = randomBytes(3).toString('hex');
const network = `pnbench-${id}`;
const bridge = `pnl${id}`;
const third = 1 + Math.floor(Math.random() * 254);
const conf = join(root, 'net.d');
execFileSync('mkdir', ['-p', conf]);
writeFileSync(
  join(conf, `${network}.conflist`),
  JSON.stringify({
    cniVersion: '0.4.0',
    name: network,
    plugins: defaultChain({ bridge, dataDir: join(root, 'ipam'), prefix: `10.234.${third}` }),
  }),
);
const iptablesBefore = iptablesLines();

const variants = [['this build', join(self, '..', '..', 'dist')]];
if (process.env.PODNET_BASELINE) variants.push(['baseline', process.env.PODNET_BASELINE]);
const samples = new Map();
try {
  for (let r = 0; r < ROUNDS; r++) {
    for (const ports of [0, 1]) {
      for (const [name, dist] of r % 2 ? [...variants].reverse() : variants) {
        const job = {
          dist,
          conf,
          stateDir: join(run, `state-${name.replace(/ /g, '-')}`),
          netnsDir: join(run, 'netns'),
          cacheDir: join(root, 'cache'),
          network,
          ports,
        };
        const r2 = spawnSync(process.execPath, [self, '--child', JSON.stringify(job)], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        if (r2.status !== 0) throw new Error(`${name}: child exited ${r2.status}`);
        const key = `${name}|${ports}`;
        samples.set(key, [...(samples.get(key) ?? []), ...JSON.parse(r2.stdout)]);
      }
    }
  }
} finally {
  removeNewCniChains(iptablesBefore);
  spawnSync('ip', ['link', 'del', bridge]);
  rmSync(root, { recursive: true, force: true });
  spawnSync('umount', [join(run, 'netns')]);
  rmSync(run, { recursive: true, force: true });
}

const rows = [];
for (const [key, s] of samples) {
  const [name, ports] = key.split('|');
  const m = (f) => median(s.map((x) => x[f])).toFixed(2);
  rows.push([
    name,
    ports,
    m('setupMs'),
    m('setupOwn'),
    m('teardownMs'),
    m('teardownOwn'),
    s.length,
  ]);
}
printTable(
  `Networking setup + teardown on a bridge network (default chain), medians in ms, ${ROUNDS} rounds x ${ITER}`,
  ['build', 'ports', 'setup', 'own', 'teardown', 'own', 'cycles'],
  rows,
);
