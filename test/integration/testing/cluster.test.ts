// podnet/testing's clusters against the kernel and the Debian CNI plugins:
// pods on three nodes reach each other by pod IP for both backends, with
// their source addresses unchanged; partitions cut and heal; a delay on a
// node's link shows in a cross-node round trip; DEL and GC free exactly a
// node's leases; and a runner SIGKILLed while building leaves nothing
// within 2 s. Traffic goes only between the cluster's own namespaces.
import { type ChildProcess, spawn } from 'node:child_process';
import dc from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Cluster, type ClusterPod, createCluster } from '../../../src/testing/index.js';
import { fixture } from '../../helpers/fixtures.js';
import { isRoot, TEST_PREFIX } from '../../helpers/host.js';
import { podnetBin, runResult } from '../../helpers/process.js';
import { roundTrip, seenAs, whoamiServer } from '../../helpers/tcp.js';
import { topologyDirsPerTest } from '../../helpers/topology-env.js';

// Every ordered pair of pods: what the server of the second saw the first as.
async function matrix(pods: ClusterPod[]): Promise<Map<string, string>> {
  const servers = await Promise.all(pods.map((p) => whoamiServer(p.netns, p.ip)));
  try {
    const out = new Map<string, string>();
    for (const [i, a] of pods.entries())
      for (const [j, b] of pods.entries())
        if (i !== j) out.set(`${a.name}>${b.name}`, await seenAs(a.netns, b.ip, servers[j]!.port));
    return out;
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}

async function ipJson(pod: { exec: ClusterPod['exec'] }, args: string[]): Promise<unknown> {
  const r = await pod.exec(args[0]!, args.slice(1));
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

/** Which of these network namespace inodes a process is in or holds an fd of (`pid: net:[N]`). */
function heldNamespaces(inodes: number[]): string[] {
  const wanted = new Set(inodes.map((i) => `net:[${i}]`));
  const held: string[] = [];
  const link = (path: string): string => {
    try {
      return readlinkSync(path);
    } catch {
      return '';
    }
  };
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      // Gone meanwhile.
    }
    for (const target of [
      link(`/proc/${pid}/ns/net`),
      ...fds.map((fd) => link(`/proc/${pid}/fd/${fd}`)),
    ])
      if (wanted.has(target)) held.push(`${pid}: ${target}`);
  }
  return held;
}

describe.skipIf(!isRoot)('podnet/testing clusters', () => {
  const dirs = topologyDirsPerTest();

  const build = (backend: 'host-gw' | 'vxlan', podCidr: string): Promise<Cluster> =>
    createCluster({ nodes: 3, backend, podCidr, dir: dirs.dir, recordDir: dirs.recordDir });

  // All six at once: the nodes' runtimes, the plugins (two racing to make a
  // node's cni0) and the record's rewrites all run side by side.
  function withPods(c: Cluster): Promise<ClusterPod[]> {
    return Promise.all(
      c.nodes.flatMap((node) => [1, 2].map((k) => node.addPod({ name: `${node.name}-p${k}` }))),
    );
  }

  describe.each([
    ['host-gw', '10.241.0.0/16'],
    ['vxlan', '10.242.0.0/16'],
  ] as const)('backend %s', (backend, podCidr) => {
    it('3 nodes, 2 pods each: every pod reaches every other by pod IP, its address unchanged', async () => {
      await using c = await build(backend, podCidr);
      const pods = await withPods(c);
      expect(c.nodes.map((n) => n.podSubnet)).toEqual(
        [1, 2, 3].map((i) => `${podCidr.split('.').slice(0, 2).join('.')}.${i}.0/24`),
      );
      for (const p of pods) expect(p.ip.startsWith(p.node.podSubnet.slice(0, -4))).toBe(true);
      // The record lists every pod's namespace, though all were added at once.
      const record = JSON.parse(readFileSync(c.record, 'utf8'));
      for (const p of pods) expect(record.namespaces).toContain(p.netns.path);
      expect(record.cluster.pods).toHaveLength(6);
      const seen = await matrix(pods);
      expect(seen.size).toBe(30);
      for (const a of pods)
        for (const b of pods) if (a !== b) expect(seen.get(`${a.name}>${b.name}`)).toBe(a.ip);

      // The shape each backend is meant to have, on node 1.
      const n1 = c.nodes[0]!;
      const routes = (await ipJson(n1, ['ip', '-j', '-4', 'route'])) as {
        dst: string;
        gateway?: string;
        dev: string;
        flags: string[];
      }[];
      for (const peer of c.nodes.slice(1)) {
        const r = routes.find((x) => x.dst === peer.podSubnet);
        if (backend === 'host-gw') expect(r).toMatchObject({ gateway: peer.address, dev: 'eth0' });
        else {
          expect(r).toMatchObject({ gateway: peer.podSubnet.split('/')[0], dev: 'flannel.1' });
          expect(r!.flags).toContain('onlink');
        }
      }
      if (backend === 'vxlan') {
        const [link] = (await ipJson(n1, ['ip', '-d', '-j', 'link', 'show', 'flannel.1'])) as {
          mtu: number;
          linkinfo: { info_kind: string; info_data: Record<string, unknown> };
        }[];
        expect(link!.linkinfo.info_kind).toBe('vxlan');
        expect(link!.linkinfo.info_data).toMatchObject({
          id: 1,
          local: n1.address,
          port: 8472,
          learning: false,
        });
        expect(link!.mtu).toBe(1450);
        const neigh = (await ipJson(n1, ['ip', '-j', 'neigh', 'show', 'dev', 'flannel.1'])) as {
          dst: string;
          state: string[];
        }[];
        expect(neigh.map((x) => x.dst).sort()).toEqual(
          c.nodes
            .slice(1)
            .map((p) => p.podSubnet.split('/')[0])
            .sort(),
        );
        expect(neigh.every((x) => x.state.includes('PERMANENT'))).toBe(true);
        const fdb = (await ipJson(n1, ['bridge', '-j', 'fdb', 'show', 'dev', 'flannel.1'])) as {
          dst?: string;
        }[];
        expect(
          fdb
            .map((x) => x.dst)
            .filter(Boolean)
            .sort(),
        ).toEqual(
          c.nodes
            .slice(1)
            .map((p) => p.address)
            .sort(),
        );
      }
    });

    it('partition({1},{2,3}) cuts node 1 from the others, who still reach each other; heal restores it', async () => {
      await using c = await build(backend, podCidr);
      const [a, b, d] = [
        await c.nodes[0]!.addPod({ name: 'a' }),
        await c.nodes[1]!.addPod({ name: 'b' }),
        await c.nodes[2]!.addPod({ name: 'd' }),
      ];
      const servers = await Promise.all([a, b, d].map((p) => whoamiServer(p.netns, p.ip)));
      try {
        const [pa, pb, pd] = servers.map((s) => s.port) as [number, number, number];
        await c.partition([c.nodes[0]!], [c.nodes[1]!, c.nodes[2]!]);
        expect((await c.partitionState()).groups).toEqual([['node1'], ['node2', 'node3']]);
        expect(await seenAs(a.netns, b.ip, pb, 700)).toMatch(/timed out|no answer/);
        expect(await seenAs(d.netns, a.ip, pa, 700)).toMatch(/timed out|no answer/);
        expect(await seenAs(b.netns, d.ip, pd)).toBe(b.ip);
        expect(await seenAs(d.netns, b.ip, pb)).toBe(d.ip);
        expect((await c.partitionState()).droppedFrames).toBeGreaterThan(0);
        await c.heal();
        expect((await c.partitionState()).groups).toEqual([]);
        expect(await seenAs(a.netns, b.ip, pb)).toBe(a.ip);
        expect(await seenAs(d.netns, a.ip, pa)).toBe(d.ip);
      } finally {
        await Promise.all(servers.map((s) => s.close()));
      }
    });
  });

  it('a 50 ms delay on a node link gives a cross-node round trip of at least 100 ms, counted', async () => {
    await using c = await build('host-gw', '10.243.0.0/16');
    const a = await c.nodes[0]!.addPod({ name: 'a' });
    const b = await c.nodes[1]!.addPod({ name: 'b' });
    const d = await c.nodes[2]!.addPod({ name: 'd' });
    const before = await roundTrip(a.netns, b.netns, b.ip);
    const link = c.nodes[0]!.link;
    await link.impair({ delay: 50 });
    const slow = await roundTrip(a.netns, b.netns, b.ip);
    expect(slow).toBeGreaterThanOrEqual(100);
    // Only node1's link is slow: node2 and node3 still talk at full speed.
    expect(await roundTrip(b.netns, d.netns, d.ip)).toBeLessThan(50);
    const state = await link.impairment();
    expect(state?.impairment).toEqual({ delay: 50 });
    const [out, back] = state!.directions;
    expect(out).toMatchObject({ from: 'node1', to: 'switch' });
    expect(back).toMatchObject({ from: 'switch', to: 'node1' });
    expect(out.delivered).toBeGreaterThan(0);
    expect(back.delivered).toBeGreaterThan(0);
    await link.clear();
    expect(await link.impairment()).toBeUndefined();
    const after = await roundTrip(a.netns, b.netns, b.ip);
    expect(after).toBeLessThan(50);
    console.log(
      `cluster: cross-node round trip ${before.toFixed(2)} ms, with 50 ms on node1's link ${slow.toFixed(1)} ms, after ${after.toFixed(2)} ms`,
    );
  });

  it("a fault on a pod's link slows that pod only; loss 100 on it cuts it off", async () => {
    await using c = await build('vxlan', '10.249.0.0/16');
    const a = await c.nodes[0]!.addPod({ name: 'a' });
    const a2 = await c.nodes[0]!.addPod({ name: 'a2' });
    const b = await c.nodes[1]!.addPod({ name: 'b' });
    expect(a.link.ends.map((e) => e.host.name)).toEqual(['a', 'node1']);
    await a.link.impair({ delay: 20 });
    expect(await roundTrip(a.netns, b.netns, b.ip)).toBeGreaterThanOrEqual(40);
    expect(await roundTrip(a2.netns, b.netns, b.ip)).toBeLessThan(20);
    await a.link.impair({ loss: 100 });
    const server = await whoamiServer(b.netns, b.ip);
    try {
      expect(await seenAs(a.netns, b.ip, server.port, 700)).toMatch(/timed out|no answer/);
      expect(await seenAs(a2.netns, b.ip, server.port)).toBe(a2.ip);
      await a.link.clear();
      expect(await seenAs(a.netns, b.ip, server.port)).toBe(a.ip);
    } finally {
      await server.close();
    }
    // A pod removed while impaired takes its delay line with it.
    await a.link.impair({ delay: 5 });
    await a.remove();
    expect(existsSync(a.netns.path)).toBe(false);
  });

  it("another plugin runs unchanged: Debian's ptp from a node's own config list, across nodes", async () => {
    await using c = await createCluster({
      nodes: 2,
      podCidr: '10.251.0.0/16',
      dir: dirs.dir,
      recordDir: dirs.recordDir,
      conflist: (node) => ({
        cniVersion: '1.0.0',
        name: 'ptp-net',
        plugins: [
          {
            type: 'ptp',
            mtu: node.mtu,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: node.podSubnet, gateway: node.gateway }]],
              routes: [{ dst: '0.0.0.0/0' }],
              dataDir: node.dataDir,
            },
          },
        ],
      }),
    });
    const [a, b] = [
      await c.nodes[0]!.addPod({ name: 'a' }),
      await c.nodes[1]!.addPod({ name: 'b' }),
    ];
    // ptp: no bridge, a veth with the pod's /32 routed to it.
    expect((await c.nodes[0]!.exec('ip', ['link', 'show', 'cni0'])).code).not.toBe(0);
    expect(a.link.ends[1].host.name).toBe('node1');
    const server = await whoamiServer(b.netns, b.ip);
    try {
      expect(await seenAs(a.netns, b.ip, server.port)).toBe(a.ip);
    } finally {
      await server.close();
    }
    expect(await c.nodes[1]!.leases()).toEqual([b.ip]);
    await b.remove();
    expect(await c.nodes[1]!.leases()).toEqual([]);
    // A list whose plugin is not installed is refused before anything is made.
    const before = readdirSync(dirs.dir).length;
    await expect(
      createCluster({
        dir: dirs.dir,
        recordDir: dirs.recordDir,
        conflist: () => ({ cniVersion: '1.0.0', name: 'x', plugins: [{ type: 'no-such-plugin' }] }),
      }),
    ).rejects.toMatchObject({ code: 'ERR_PODNET_CNI_CONFIG' });
    expect(readdirSync(dirs.dir)).toHaveLength(before);
  });

  it("DEL of a pod on node 2 frees exactly its lease; GC on node 3 with no valid pod frees node 3's only", async () => {
    await using c = await build('host-gw', '10.244.0.0/16');
    const pods = await withPods(c);
    const leases = async (): Promise<string[][]> => Promise.all(c.nodes.map((n) => n.leases()));
    const before = await leases();
    expect(before.map((l) => l.length)).toEqual([2, 2, 2]);
    expect(before[1]).toEqual(
      pods
        .filter((p) => p.node.name === 'node2')
        .map((p) => p.ip)
        .sort(),
    );
    const gone = pods.find((p) => p.name === 'node2-p1')!;
    const sleeper = gone.spawn('sleep', ['60'], { stdio: 'ignore' });
    const ended = new Promise((r) => sleeper.once('exit', r));
    await gone.remove();
    expect(existsSync(gone.netns.path)).toBe(false);
    // What ran in the pod went with it.
    await ended;
    const afterDel = await leases();
    expect(afterDel).toEqual([before[0], before[1]!.filter((ip) => ip !== gone.ip), before[2]]);

    await c.nodes[2]!.gc([]);
    expect(await leases()).toEqual([afterDel[0], afterDel[1], []]);
    expect(await c.nodes[2]!.runtime.cachedAttachments()).toEqual([]);
    expect((await c.nodes[0]!.runtime.cachedAttachments()).length).toBe(2);
    // GC keeps what it is told is valid.
    await c.nodes[0]!.gc(c.nodes[0]!.pods);
    expect(await c.nodes[0]!.leases()).toEqual(before[0]);
  });

  it('bad options are refused in one typed line before anything is made', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ nodes: 0 }, /nodes must be an integer from 1 to 32/],
      [{ podCidr: '10.244.0.0/24' }, /podCidr must be an IPv4 network of prefix 8 to 22/],
      [{ podCidr: '10.244.1.0/16' }, /host bits/],
      [{ backend: 'udp' }, /backend must be 'host-gw' or 'vxlan'/],
      [{ underlay: '10.245.3.0/24', podCidr: '10.245.0.0/16' }, /is inside podCidr/],
      [{ vni: 0 }, /vni must be an integer/],
    ];
    for (const [opts, message] of cases) {
      const err = await createCluster({ ...opts, dir: dirs.dir, recordDir: dirs.recordDir }).catch(
        (e: unknown) => e as { code?: string; message: string },
      );
      expect((err as { code?: string }).code).toBe('ERR_PODNET_INVALID_ARGUMENT');
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message.split('\n')).toHaveLength(1);
    }
    // flannel's plugin is not among Debian's: refused before anything is made, naming it.
    const flannel = await createCluster({
      plugin: 'flannel',
      dir: dirs.dir,
      recordDir: dirs.recordDir,
    }).then(
      async (c) => {
        await c.close();
        return Object.assign(new Error('built a flannel cluster where Debian has no flannel'), {
          code: 'none',
        });
      },
      (e: unknown) => e as Error & { code?: string },
    );
    expect(flannel.code).toBe('ERR_PODNET_CNI_CONFIG');
    expect(flannel.message).toMatch(/plugin binary 'flannel' not found in \/usr\/lib\/cni/);
    expect(readdirSync(dirs.dir)).toEqual([]);
    expect(readdirSync(dirs.recordDir)).toEqual([]);
    await using c = await build('host-gw', '10.246.0.0/16');
    await c.nodes[0]!.addPod({ name: 'a' });
    await expect(c.nodes[1]!.addPod({ name: 'a' })).rejects.toThrow(/already has a pod 'a'/);
    await expect(c.nodes[1]!.addPod({ name: 'A b' })).rejects.toThrow(/a pod name is/);
    expect(c.pods().map((p) => p.name)).toEqual(['a']);
  });

  it('an abort during the build removes what was made and rejects with ERR_PODNET_ABORTED', async () => {
    const ac = new AbortController();
    const onPhase = (m: unknown): void => {
      if ((m as { phase?: string }).phase === 'node:2') ac.abort(new Error('enough'));
    };
    dc.subscribe('podnet:testing:cluster', onPhase);
    let err: { code?: string; cause?: unknown };
    try {
      err = await createCluster({
        nodes: 3,
        dir: dirs.dir,
        recordDir: dirs.recordDir,
        signal: ac.signal,
      })
        .then(async (c) => {
          await c.close();
          return new Error('built in spite of the abort');
        })
        .catch((e: unknown) => e as Error);
    } finally {
      dc.unsubscribe('podnet:testing:cluster', onPhase);
    }
    expect(err.code).toBe('ERR_PODNET_ABORTED');
    expect((err.cause as Error).message).toBe('enough');
    expect(readdirSync(dirs.dir)).toEqual([]);
    expect(readdirSync(dirs.recordDir)).toEqual([]);
    await expect(
      createCluster({ dir: dirs.dir, recordDir: dirs.recordDir, signal: AbortSignal.abort() }),
    ).rejects.toMatchObject({ code: 'ERR_PODNET_ABORTED' });
    expect(readdirSync(dirs.recordDir)).toEqual([]);
  });

  it.each(['podnet gc', 'the next createCluster'])(
    'a cluster whose runner and watcher were both SIGKILLed is removed by %s',
    async (by) => {
      const child = spawn(
        process.execPath,
        [fixture('testing/cluster-die-at.mjs'), 'hold', dirs.dir, dirs.recordDir],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          if (d.toString().includes('ready')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`runner exited ${code}`)));
      });
      const watcher = readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .find((p) => {
          try {
            const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8');
            return argv.includes('reaper-main') && argv.includes(dirs.recordDir);
          } catch {
            return false;
          }
        });
      expect(watcher).toBeDefined();
      process.kill(Number(watcher), 'SIGKILL');
      child.kill('SIGKILL');
      await new Promise((r) => child.once('close', r));
      // Nobody swept: the namespaces (switch, 3 nodes, 2 pods), record and files are all there.
      expect(readdirSync(dirs.dir)).toHaveLength(6);
      expect(readdirSync(dirs.recordDir).sort()).toEqual([
        expect.stringMatching(/^[0-9a-f]{16}\.d$/),
        expect.stringMatching(/^[0-9a-f]{16}\.json$/),
      ]);
      if (by === 'podnet gc') {
        // gc's own state (containers) in a directory of its own, off the host's.
        const state = mkdtempSync(join(tmpdir(), TEST_PREFIX));
        const gc = await runResult(
          [
            process.execPath,
            podnetBin,
            'gc',
            '--json',
            '--state-dir',
            state,
            '--netns-dir',
            dirs.dir,
          ],
          { env: { PODNET_TESTING_DIR: dirs.recordDir } },
        ).finally(() => rmSync(state, { recursive: true, force: true }));
        expect(gc.code, gc.stderr).toBe(0);
        expect(JSON.parse(gc.stdout).testTopologies.removedNamespaces).toHaveLength(6);
      } else {
        const next = await build('host-gw', '10.250.0.0/16');
        expect(readdirSync(dirs.dir)).toHaveLength(4);
        await next.close();
      }
      expect(readdirSync(dirs.dir)).toEqual([]);
      expect(readdirSync(dirs.recordDir)).toEqual([]);
    },
  );

  describe('after the runner is SIGKILLed mid-build, the reaper leaves nothing within 2 s', () => {
    it.each(['switch', 'node:2', 'wired', 'plugin', 'pod:b'])('killed at %s', async (at) => {
      const child: ChildProcess = spawn(
        process.execPath,
        [fixture('testing/cluster-die-at.mjs'), at, dirs.dir, dirs.recordDir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      child.stdout!.on('data', (d) => {
        out += d;
      });
      child.stderr!.on('data', (d) => {
        err += d;
      });
      const status = await new Promise<NodeJS.Signals | number | null>((resolve) =>
        child.once('close', (code, signal) => resolve(signal ?? code)),
      );
      expect(status, err).toBe('SIGKILL');
      const { inodes } = JSON.parse(out) as { inodes: number[] };
      expect(inodes.length).toBeGreaterThan(0);
      const t0 = Date.now();
      // Unmounted, and held by no process (an orphaned plugin, the reaper):
      // then the kernel has freed them, with every link, route, neighbour
      // and FDB entry in them; leases and caches were in the record's files.
      const left = (): string[] => [
        ...readdirSync(dirs.dir),
        ...readdirSync(dirs.recordDir),
        ...heldNamespaces(inodes),
      ];
      while (left().length && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
      expect(left()).toEqual([]);
      console.log(`cluster reaper (${at}): gone ${Date.now() - t0} ms after the kill`);
    });
  });
});
