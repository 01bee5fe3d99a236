// Benchmark of issues 2 and 13: link statistics inside a namespace (one
// read, sync and on the event loop, and a sweep over 100 namespaces), and
// namespace create + remove, each compared in the same run with a C floor
// and with iproute2 (see bench/README.md). Run as root after `npm run build`.
//
// Environment: BENCH_ROUNDS (default 3) interleaved rounds of every approach;
// the figure reported is the median over rounds of each round's median.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmdirSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetworkNamespace } from '../dist/index.js';
import { compileC, fmtUs, median, printTable, runJson, usSince } from './lib/util.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IFNAME = 'lo';
// Small batches, many of them: on a shared machine a batch that a
// preemption hits is an outlier the median leaves out.
const STATS_BATCHES = 100;
const STATS_PER_BATCH = 200;
const SWEEP_NAMESPACES = 100;
const SWEEPS = 50;
const IP_SPAWNS_PER_ROUND = 15;
const CREATE_BLOCK = 5; // create + remove operations per block
const CREATE_CYCLES = 8; // blocks of each approach per round
const IP_NETNS_BLOCK = 2;
const SETTLE_MS = 25; // pause before each block: lets namespace teardown finish

if (process.getuid?.() !== 0) {
  console.error('bench/netns.js: needs root (namespaces and mounts); skipped');
  process.exit(0);
}

// Internals, only for the breakdown rows: the benchmark still runs when
// they move or change shape.
let internals;
try {
  const { native } = await import('../dist/native.js');
  const rtnl = await import('../dist/netns/rtnl.js');
  if (native?.RtnlSocket && rtnl.encodeGetLink && rtnl.decodeLinkStats) {
    internals = { native, ...rtnl };
  }
} catch {}

const hex = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'podnet-bench-'));
const runNetnsPrefix = `podnet-bench-${hex}`;
const ipStatsName = `${runNetnsPrefix}-stats`;
const live = new Set(); // NetworkNamespace objects not yet removed
const runNames = new Set(); // names we put in /run/netns

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`);
  return r.stdout;
}

/** Removes everything this run made, synchronously (also used on signals). */
function cleanupSync() {
  for (const ns of live) ns.close();
  for (const name of runNames) {
    if (existsSync(join('/run/netns', name))) spawnSync('ip', ['netns', 'del', name]);
  }
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    spawnSync('umount', ['-l', p]);
    rmSync(p, { force: true });
  }
  // podnet made DIR a shared bind mount of itself: unmount it before rmdir.
  for (let i = 0; i < 8 && spawnSync('mountpoint', ['-q', dir]).status === 0; i++) {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  }
  rmdirSync(dir);
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    cleanupSync();
    process.exit(130);
  });
}

async function create(name) {
  const ns = await NetworkNamespace.create({ dir, name });
  live.add(ns);
  return ns;
}

async function remove(ns) {
  await ns.remove();
  live.delete(ns);
}

/** Median per-call microseconds of fn over BATCHES batches of N calls. */
function timeSync(fn, batches = STATS_BATCHES, n = STATS_PER_BATCH) {
  // Warm-up (JIT, socket): at least 20 calls, also where a batch is one sweep.
  for (let i = 0; i < Math.max(n, 20); i++) fn();
  const per = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    per.push(usSince(t0) / n);
  }
  return median(per);
}

async function timeAsync(fn, batches, n) {
  for (let i = 0; i < n; i++) await fn();
  const per = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn();
    per.push(usSince(t0) / n);
  }
  return median(per);
}

/** Collects per-approach round medians: results.add(key, value). */
class Rounds {
  #m = new Map();
  add(key, us) {
    if (!this.#m.has(key)) this.#m.set(key, []);
    this.#m.get(key).push(us);
  }
  get(key) {
    return median(this.#m.get(key) ?? []);
  }
  all(key) {
    return this.#m.get(key) ?? [];
  }
}

const ratio = (x, floor) => (Number.isFinite(x) ? `${(x / floor).toFixed(2)}x` : '-');
const goal = (ok) => (ok ? 'yes' : 'NO');

async function statsBench(statsBin) {
  const r = new Rounds();
  const ns = await create('stats');
  sh('ip', ['netns', 'add', ipStatsName]);
  runNames.add(ipStatsName);

  let raw;
  if (internals) {
    // A second kept socket in the same namespace, driven without the
    // NetworkNamespace wrapper, to split the cost into N-API round trip
    // and JS decode.
    const nsfd = openSync(ns.path, 'r');
    const fd = internals.native.socketInSync(nsfd, 16, 3, 0);
    closeSync(nsfd);
    const counters = new Float64Array(internals.linkStatsFields?.length ?? 25);
    const sock = new internals.native.RtnlSocket(fd, counters);
    const req = internals.encodeGetLink(IFNAME);
    const resp = Buffer.allocUnsafe(16 * 1024);
    const len = sock.request(req, resp);
    // lo is ifindex 1 in every namespace (LOOPBACK_IFINDEX).
    const statsOf = sock.statsReader?.();
    raw = { sock, req, resp, len, statsOf, counters };
  }

  for (let round = 0; round < ROUNDS; round++) {
    const args = [ns.path, IFNAME, String(STATS_BATCHES), String(STATS_PER_BATCH)];
    const kept = runJson(statsBin, ['kept', ...args]);
    r.add('cKept', kept.median_us);
    r.replyBytes = kept.reply_bytes;
    r.add(
      'jsSync',
      timeSync(() => ns.linkStatsSync(IFNAME)),
    );
    r.add('cGetstats', runJson(statsBin, ['getstats', ...args]).median_us);
    r.add('cFresh', runJson(statsBin, ['fresh', ns.path, IFNAME, '10', '500']).median_us);
    r.add('jsAsync', await timeAsync(() => ns.linkStats(IFNAME), STATS_BATCHES, STATS_PER_BATCH));
    if (raw) {
      r.add(
        'rawRequest',
        timeSync(() => raw.sock.request(raw.req, raw.resp)),
      );
      if (raw.statsOf) {
        r.add(
          'rawStatsOf',
          timeSync(() => raw.statsOf(1)),
        );
        r.add(
          'buildOnly',
          timeSync(() => internals.statsFromCounters(raw.counters)),
        );
      }
      r.add(
        'decodeOnly',
        timeSync(() => internals.decodeLinkStats(raw.resp, raw.len, 'bench')),
      );
    }
    const spawns = [];
    for (let i = 0; i < IP_SPAWNS_PER_ROUND; i++) {
      const t0 = process.hrtime.bigint();
      sh('ip', ['-n', ipStatsName, '-s', '-j', 'link', 'show', 'dev', IFNAME]);
      spawns.push(usSince(t0));
    }
    r.add('ip', median(spawns));
  }
  raw?.sock.close();
  // Sanity: podnet and ip see the same kind of counters.
  const sample = ns.linkStatsSync(IFNAME);
  if (typeof sample.rxBytes !== 'number') throw new Error('linkStatsSync returned no rxBytes');
  await remove(ns);
  sh('ip', ['netns', 'del', ipStatsName]);
  runNames.delete(ipStatsName);
  return r;
}

async function sweepBench(statsBin) {
  const r = new Rounds();
  const nss = [];
  for (let i = 0; i < SWEEP_NAMESPACES; i++) {
    nss.push(await create(`sweep-${String(i).padStart(3, '0')}`));
  }
  for (const ns of nss) ns.linkStatsSync(IFNAME); // open every kept socket (warm)
  const sweep = NetworkNamespace.statsSweep(nss, IFNAME);
  const paths = nss.map((ns) => ns.path);
  for (let round = 0; round < ROUNDS; round++) {
    r.add(
      'cSweepStats1',
      runJson(statsBin, ['sweepstats1', IFNAME, String(SWEEPS), ...paths]).median_us,
    );
    r.add(
      'cSweepStats',
      runJson(statsBin, ['sweepstats', IFNAME, String(SWEEPS), ...paths]).median_us,
    );
    r.add(
      'jsStatsSweep',
      timeSync(() => sweep.readSync(), SWEEPS, 1),
    );
    r.add(
      'jsSweep',
      timeSync(
        () => {
          for (const ns of nss) ns.linkStatsSync(IFNAME);
        },
        SWEEPS,
        1,
      ),
    );
    r.add('cSweep', runJson(statsBin, ['sweep', IFNAME, String(SWEEPS), ...paths]).median_us);
  }
  const check = sweep.readSync();
  if (check.some((x) => typeof x.rxBytes !== 'number')) throw new Error('the sweep failed a read');
  sweep.close();
  for (const ns of nss) await remove(ns);
  return r;
}

/**
 * Namespace create + remove. A namespace's teardown finishes in a kernel
 * worker after umount, and eats CPU for a while: whatever runs next pays for
 * it. So approaches run in small blocks, interleaved in a rotating order,
 * each block after a short pause, and per-operation samples are pooled.
 */
async function createBench(floorBin) {
  const r = new Rounds();
  // Make DIR podnet's shared mount point first (what every later create
  // finds), so the C programs see the same directory state.
  await remove(await create('prepare'));
  let seq = 0;
  const cBlock = (mode, out) => {
    const j = runJson(floorBin, [mode, dir, `${mode}-${seq++}`, String(CREATE_BLOCK)]);
    out.create.push(...j.create);
    out.remove.push(...j.remove);
    out.total.push(...j.total);
  };
  const jsBlock = async (out) => {
    for (let i = 0; i < CREATE_BLOCK; i++) {
      const t0 = process.hrtime.bigint();
      const ns = await create(`js-${seq++}`);
      const createUs = usSince(t0);
      const t1 = process.hrtime.bigint();
      await remove(ns);
      const removeUs = usSince(t1);
      out.create.push(createUs);
      out.remove.push(removeUs);
      out.total.push(createUs + removeUs);
    }
  };
  // The addon's calls without the TypeScript wrapper.
  const nativeBlock = async (out) => {
    const { native } = internals;
    for (let i = 0; i < CREATE_BLOCK; i++) {
      const p = join(dir, `raw-${seq++}`);
      const t0 = process.hrtime.bigint();
      const fd = await native.createNetns(dir, p);
      const createUs = usSince(t0);
      const t1 = process.hrtime.bigint();
      native.closeFd(fd);
      await native.removeNetns(p);
      const removeUs = usSince(t1);
      out.create.push(createUs);
      out.remove.push(removeUs);
      out.total.push(createUs + removeUs);
    }
  };
  const ipBlock = (out) => {
    for (let i = 0; i < IP_NETNS_BLOCK; i++) {
      const name = `${runNetnsPrefix}-${seq++}`;
      const t0 = process.hrtime.bigint();
      sh('ip', ['netns', 'add', name]);
      runNames.add(name);
      const addUs = usSince(t0);
      const t1 = process.hrtime.bigint();
      sh('ip', ['netns', 'del', name]);
      runNames.delete(name);
      const delUs = usSince(t1);
      out.create.push(addUs);
      out.remove.push(delUs);
      out.total.push(addUs + delUs);
    }
  };

  const approaches = [
    ['c', (out) => cBlock('floor', out)],
    ['cp', (out) => cBlock('podnet', out)],
    ['js', jsBlock],
    ...(internals ? [['native', nativeBlock]] : []),
    ['ip', ipBlock],
  ];
  for (let round = 0; round < ROUNDS; round++) {
    const samples = new Map(approaches.map(([k]) => [k, { create: [], remove: [], total: [] }]));
    for (let cycle = 0; cycle < CREATE_CYCLES; cycle++) {
      for (let i = 0; i < approaches.length; i++) {
        const [key, block] = approaches[(i + cycle) % approaches.length];
        await sleep(SETTLE_MS);
        await block(samples.get(key));
      }
    }
    for (const [key, out] of samples) {
      r.add(`${key}Create`, median(out.create));
      r.add(`${key}Remove`, median(out.remove));
      r.add(`${key}Total`, median(out.total));
    }
    if (internals) {
      // One libuv pool round trip with trivial work (open + fstatfs + close
      // of '/', which is not nsfs): the fixed cost of each async native call.
      r.add('poolHop', await timeAsync(() => internals.native.openNetns('/'), 10, 100));
    }
  }
  return r;
}

let summary;
try {
  const statsBin = compileC('stats-floor');
  const floorBin = compileC('netns-floor', ['-pthread']);
  console.log(
    `netns bench: ${ROUNDS} rounds, node ${process.version}, kernel ${sh('uname', ['-r']).trim()}, ` +
      `temp dir ${dir}`,
  );

  const s = await statsBench(statsBin);
  const floor = s.get('cKept');
  const statsFloor = s.get('cGetstats');
  const js = s.get('jsSync');
  const jsAsync = s.get('jsAsync');
  const statsRows = [
    ['C, kept socket, RTM_GETSTATS (floor)', fmtUs(statsFloor), '1.00x', ''],
    [
      'podnet ns.linkStatsSync (RTM_GETSTATS)',
      fmtUs(js),
      ratio(js, statsFloor),
      `<= 1.2x: ${goal(js <= 1.2 * statsFloor)}`,
    ],
    [
      'podnet await ns.linkStats (event loop)',
      fmtUs(jsAsync),
      ratio(jsAsync, statsFloor),
      `<= 3x: ${goal(jsAsync <= 3 * statsFloor)}`,
    ],
  ];
  // A row of one measured part of the read: its time and its ratio to the floor.
  const part = (label, key) => [label, fmtUs(s.get(key)), ratio(s.get(key), statsFloor), ''];
  if (internals) {
    if (Number.isFinite(s.get('rawStatsOf'))) {
      statsRows.push(
        part('  native RTM_GETSTATS read alone (statsReader)', 'rawStatsOf'),
        part('  the LinkStats object alone (statsFromCounters)', 'buildOnly'),
      );
    }
    statsRows.push(
      part('  native request() alone (RTM_GETLINK)', 'rawRequest'),
      part('  decodeLinkStats alone (RTM_GETLINK reply)', 'decodeOnly'),
    );
  }
  statsRows.push(
    ['C, kept socket, RTM_GETLINK (the floor before)', fmtUs(floor), ratio(floor, statsFloor), ''],
    [
      'C, fresh setns + socket per read',
      fmtUs(s.get('cFresh')),
      ratio(s.get('cFresh'), statsFloor),
      '',
    ],
    [
      `spawn ip -n NS -s -j link show dev ${IFNAME}`,
      fmtUs(s.get('ip')),
      ratio(s.get('ip'), statsFloor),
      '',
    ],
  );
  printTable(
    `Link statistics of ${IFNAME} in one namespace, per read (RTM_GETLINK reply ${s.replyBytes} bytes, RTM_GETSTATS 232)`,
    ['approach', 'median', 'ratio to floor', 'goal met?'],
    statsRows,
  );

  const w = await sweepBench(statsBin);
  const jsSweep = w.get('jsSweep');
  const cSweep = w.get('cSweep');
  const cSweepStats = w.get('cSweepStats');
  const cSweepStats1 = w.get('cSweepStats1');
  const jsStatsSweep = w.get('jsStatsSweep');
  printTable(
    `Sweep: one read of ${IFNAME} in each of ${SWEEP_NAMESPACES} namespaces, sockets kept (warm)`,
    ['approach', 'median per sweep', 'ratio to floor', 'goal met?'],
    [
      [
        'C, RTM_GETSTATS and its reply on each socket in turn (floor)',
        fmtUs(cSweepStats1),
        '1.00x',
        '',
      ],
      [
        'podnet NetworkNamespace.statsSweep(...).readSync()',
        fmtUs(jsStatsSweep),
        ratio(jsStatsSweep, cSweepStats1),
        `<= 1.3x: ${goal(jsStatsSweep <= 1.3 * cSweepStats1)}`,
      ],
      [
        'podnet linkStatsSync on each',
        fmtUs(jsSweep),
        ratio(jsSweep, cSweepStats1),
        `< 2 ms: ${goal(jsSweep < 2000)}`,
      ],
      [
        'C, RTM_GETSTATS on every socket, then every reply',
        fmtUs(cSweepStats),
        ratio(cSweepStats, cSweepStats1),
        '',
      ],
      ['C, RTM_GETLINK on each socket in turn', fmtUs(cSweep), ratio(cSweep, cSweepStats1), ''],
    ],
  );

  const c = await createBench(floorBin);
  const cTotal = c.get('cTotal');
  const jsTotal = c.get('jsTotal');
  const split = (k) => `${fmtUs(c.get(`${k}Create`))} + ${fmtUs(c.get(`${k}Remove`))}`;
  const createRows = [
    [
      'C: fresh thread unshare + bind mount; umount2 + unlink (floor)',
      fmtUs(cTotal),
      split('c'),
      '1.00x',
      '',
    ],
    [
      "C: same + podnet's extra syscalls (flock, MS_SHARED, open fd)",
      fmtUs(c.get('cpTotal')),
      split('cp'),
      ratio(c.get('cpTotal'), cTotal),
      '',
    ],
    [
      'podnet NetworkNamespace.create + ns.remove',
      fmtUs(jsTotal),
      split('js'),
      ratio(jsTotal, cTotal),
      `<= 1.5x: ${goal(jsTotal <= 1.5 * cTotal)}`,
    ],
  ];
  if (internals) {
    createRows.push(
      [
        '  addon createNetns + removeNetns (no TS wrapper)',
        fmtUs(c.get('nativeTotal')),
        split('native'),
        ratio(c.get('nativeTotal'), cTotal),
        '',
      ],
      ['  one libuv pool round trip (trivial job)', fmtUs(c.get('poolHop')), '', '', ''],
    );
  }
  createRows.push([
    'spawn ip netns add + ip netns del',
    fmtUs(c.get('ipTotal')),
    split('ip'),
    ratio(c.get('ipTotal'), cTotal),
    '',
  ]);
  printTable(
    `Namespace create + remove, per operation (${CREATE_BLOCK * CREATE_CYCLES} per approach per round, interleaved)`,
    ['approach', 'median', 'create + remove', 'ratio to floor', 'goal met?'],
    createRows,
  );

  const round1 = (x) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
  const round2 = (x) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : null);
  summary = {
    bench: 'netns',
    rounds: ROUNDS,
    stats_us: {
      c_getstats_floor: round2(statsFloor),
      podnet_sync: round2(js),
      podnet_async: round2(jsAsync),
      native_stats_read_only: round2(s.get('rawStatsOf')),
      build_object_only: round2(s.get('buildOnly')),
      native_request_only: round1(s.get('rawRequest')),
      decode_only: round1(s.get('decodeOnly')),
      c_getlink: round2(floor),
      c_fresh_socket: round1(s.get('cFresh')),
      ip_spawn: round1(s.get('ip')),
      sync_ratio: round2(js / statsFloor),
      async_ratio: round2(jsAsync / statsFloor),
      goal_met: js <= 1.2 * statsFloor && jsAsync <= 3 * statsFloor,
    },
    sweep100_us: {
      c_getstats_floor: round1(cSweepStats1),
      c_getstats_all_then_replies: round1(cSweepStats),
      podnet_stats_sweep: round1(jsStatsSweep),
      podnet_sync_each: round1(jsSweep),
      c_getlink_each: round1(cSweep),
      ratio: round2(jsStatsSweep / cSweepStats1),
      goal_met: jsStatsSweep <= 1.3 * cSweepStats1,
    },
    create_remove_us: {
      c_floor: round1(cTotal),
      c_podnet_syscalls: round1(c.get('cpTotal')),
      podnet: round1(jsTotal),
      podnet_create: round1(c.get('jsCreate')),
      podnet_remove: round1(c.get('jsRemove')),
      native_only: round1(c.get('nativeTotal')),
      pool_hop: round1(c.get('poolHop')),
      ip_add_del: round1(c.get('ipTotal')),
      ratio: round2(jsTotal / cTotal),
      goal_met: jsTotal <= 1.5 * cTotal,
    },
  };
} finally {
  for (const ns of [...live]) await remove(ns).catch(() => {});
  cleanupSync();
}
console.log(`\n${JSON.stringify(summary)}`);
