// Benchmark of issue 3: ADD + DEL of the bridge list (bridge + host-local +
// portmap + firewall + tuning, as the default network, 0 ports) through
// CniRuntime, against the floor: the same plugins executed directly, with the
// same stdin and environment, from a minimal spawn loop. Both run interleaved
// in one process, on one namespace. Run as root after `npm run build:ts`.
//
// Reported: medians of ADD and DEL both ways, their difference, and the
// runtime's own time per operation (total minus the time its plugin
// processes ran, measured around each execution), which is far less noisy
// than a difference of two ~200 ms medians dominated by iptables.
//
// Environment: BENCH_ITER (default 20) ADD+DEL pairs of each approach.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniRuntime, parseNetworkList } from '../dist/cni/index.js';
import { spawnPlugin } from '../dist/cni/invoke/exec.js';
import { iptablesLines, removeNewCniChains } from './lib/iptables.js';
import { defaultChain } from './lib/networks.js';
import { median, printTable } from './lib/util.js';

const ITER = Number(process.env.BENCH_ITER ?? 20);
const PLUGIN_DIR = '/usr/lib/cni';

if (process.getuid?.() !== 0) {
  console.error('bench/cni.js: needs root (namespaces, links, iptables); skipped');
  process.exit(0);
}

const sh = (cmd, args) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

// The floor: spawn, write stdin, read stdout, wait. No validation, no cache.
function runDirect(path, stdin, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    const out = [];
    child.stdout.on('data', (d) => out.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString();
      if (code === 0) resolve(text);
      else reject(new Error(`${path} failed: ${text}`));
    });
    child.stdin.end(stdin);
  });
}

const root = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
const id = randomBytes(3).toString('hex');
const bridge = `pnb${id}`;
const netnsPath = join(root, 'ns');
const third = 1 + Math.floor(Math.random() * 254);
writeFileSync(netnsPath, '');
sh('unshare', [`--net=${netnsPath}`, 'true']);
const iptablesBefore = iptablesLines();

const list = parseNetworkList({
  cniVersion: '1.0.0',
  name: `pnb-${id}`,
  plugins: defaultChain({ bridge, dataDir: join(root, 'ipam'), prefix: `10.198.${third}` }),
});

let inPlugins = 0;
const cni = new CniRuntime({
  pluginDirs: [PLUGIN_DIR],
  confDir: join(root, 'net.d'),
  cacheDir: join(root, 'cache'),
  executor: async (...args) => {
    const t = performance.now();
    try {
      return await spawnPlugin(...args);
    } finally {
      inPlugins += performance.now() - t;
    }
  },
});

const baseEnv = { PATH: process.env.PATH || '/usr/sbin:/usr/bin:/sbin:/bin' };
function envFor(command, containerId) {
  return {
    ...baseEnv,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netnsPath,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: '',
    CNI_PATH: PLUGIN_DIR,
  };
}
function stdinFor(plugin, prevResult) {
  const c = { ...plugin.config, name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined) c.prevResult = prevResult;
  return JSON.stringify(c);
}

async function directAdd(containerId) {
  let prev;
  for (const p of list.plugins) {
    prev = JSON.parse(
      await runDirect(join(PLUGIN_DIR, p.type), stdinFor(p, prev), envFor('ADD', containerId)),
    );
  }
  return prev;
}
async function directDel(containerId, result) {
  for (const p of [...list.plugins].reverse()) {
    await runDirect(join(PLUGIN_DIR, p.type), stdinFor(p, result), envFor('DEL', containerId));
  }
}

const t = { rtAdd: [], rtDel: [], dAdd: [], dDel: [], ownAdd: [], ownDel: [] };
async function timeRuntime(i) {
  const a = { containerId: `rt-${i}`, netns: netnsPath, ifName: 'eth0' };
  inPlugins = 0;
  let s = performance.now();
  await cni.add(list, a);
  let total = performance.now() - s;
  t.rtAdd.push(total);
  t.ownAdd.push(total - inPlugins);
  inPlugins = 0;
  s = performance.now();
  await cni.del(list, a);
  total = performance.now() - s;
  t.rtDel.push(total);
  t.ownDel.push(total - inPlugins);
}
async function timeDirect(i) {
  let s = performance.now();
  const result = await directAdd(`d-${i}`);
  t.dAdd.push(performance.now() - s);
  s = performance.now();
  await directDel(`d-${i}`, result);
  t.dDel.push(performance.now() - s);
}

try {
  // Warm-up: creates the bridge and the firewall chains, loads the binaries,
  // and lets V8 compile the runtime's hot paths as a long-lived caller's would be.
  for (let i = 0; i < 3; i++) {
    await timeRuntime(`warm${i}`);
    await timeDirect(`warm${i}`);
  }
  for (const k of Object.keys(t)) t[k].length = 0;
  for (let i = 0; i < ITER; i++) {
    if (i % 2) {
      await timeDirect(i);
      await timeRuntime(i);
    } else {
      await timeRuntime(i);
      await timeDirect(i);
    }
  }
  const ms = (v) => `${v.toFixed(2)} ms`;
  printTable(
    `CNI ADD/DEL, bridge + host-local + portmap + firewall + tuning, 0 ports (${ITER} each, interleaved; medians)`,
    ['approach', 'ADD', 'DEL'],
    [
      ['plugins executed directly (floor)', ms(median(t.dAdd)), ms(median(t.dDel))],
      ['CniRuntime add / del', ms(median(t.rtAdd)), ms(median(t.rtDel))],
      [
        'difference of medians',
        ms(median(t.rtAdd) - median(t.dAdd)),
        ms(median(t.rtDel) - median(t.dDel)),
      ],
      [
        'CniRuntime own time (outside plugin processes)',
        ms(median(t.ownAdd)),
        ms(median(t.ownDel)),
      ],
    ],
  );
  console.log("\ngoal: under 2 ms of the runtime's own per ADD or DEL");
} finally {
  try {
    sh('ip', ['link', 'del', bridge]);
  } catch {}
  // firewall makes CNI-FORWARD/CNI-ADMIN once and never removes them.
  removeNewCniChains(iptablesBefore);
  try {
    sh('umount', [netnsPath]);
  } catch {}
  rmSync(root, { recursive: true, force: true });
}
