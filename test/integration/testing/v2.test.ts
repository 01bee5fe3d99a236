// podnet/testing version 2 against the kernel: named hosts and links, a
// router between two subnets (and none without its forwarding), dual stack
// without DAD, sysctls, host.exec, and the reaper: a runner SIGKILLed
// after building a topology leaves nothing within 2 s (impairment has a
// file of its own: impair.test.ts).
// Traffic goes only between the topology's own namespaces.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processIdentity } from '../../../src/process.js';
import { createTopology, sweepTopologies, tempNamespace } from '../../../src/testing/index.js';
import { writeRecord } from '../../../src/testing/reaper.js';
import { isRoot, TEST_PREFIX } from '../../helpers/host.js';
import { reportSkip } from '../../helpers/skip.js';
import { reaches } from '../../helpers/tcp.js';
import { topologyDirsPerTest } from '../../helpers/topology-env.js';

const root = new URL('../../../', import.meta.url).pathname;

describe.skipIf(!isRoot)('podnet/testing v2', () => {
  const dirs = topologyDirsPerTest();

  it('a router passes traffic between two subnets, and not without its forwarding', async () => {
    await using topo = await createTopology({
      hosts: ['a', 'r', 'b'],
      links: [
        { between: ['a', 'r'], subnet: '10.231.60.0/24' },
        { between: ['r', 'b'], subnet: '10.231.61.0/24' },
      ],
      routers: ['r'],
      dir: dirs.dir,
      recordDir: dirs.recordDir,
    });
    const [a, r, b] = [topo.host('a'), topo.host('r'), topo.host('b')];
    expect(r.interfaces.map((i) => [i.ifname, i.address])).toEqual([
      ['eth0', '10.231.60.2'],
      ['eth1', '10.231.61.1'],
    ]);
    expect(b.address).toBe('10.231.61.2');
    const routes = await a.exec('ip', ['-4', 'route', 'show', '10.231.61.0/24']);
    expect(routes.stdout).toContain('via 10.231.60.2 dev eth0');
    expect(await reaches(a.ns, b.ns, b.address)).toBe(true);
    expect(await reaches(b.ns, a.ns, a.address)).toBe(true);
    // Turning forwarding off (a sysctl through the host) stops it.
    await r.sysctl('net.ipv4.conf.all.forwarding', 0);
    expect((await r.exec('sysctl', ['-n', 'net.ipv4.conf.eth0.forwarding'])).stdout.trim()).toBe(
      '0',
    );
    expect(await reaches(a.ns, b.ns, b.address)).toBe(false);
  });

  it('dual stack hosts reach each other over IPv6 at once (no DAD), also through a router', async () => {
    await using topo = await createTopology({
      hosts: ['a', 'r', 'b'],
      links: [{ between: ['a', 'r'], subnet6: 'fd00:231:60:1::/64' }, { between: ['r', 'b'] }],
      routers: ['r'],
      dualStack: true,
      sysctls: { b: { 'net.ipv4.tcp_ecn': 1 } },
      dir: dirs.dir,
      recordDir: dirs.recordDir,
    });
    const [a, b] = [topo.host('a'), topo.host('b')];
    expect(a.address6).toBe('fd00:231:60:1::1');
    const addrs = JSON.parse(
      (await a.exec('ip', ['-j', '-6', 'addr', 'show', 'dev', 'eth0'])).stdout,
    );
    const global = addrs[0].addr_info.find((x: { local: string }) => x.local === a.address6);
    expect(global.tentative).toBeUndefined();
    expect(await reaches(a.ns, b.ns, b.address6!)).toBe(true);
    expect(await reaches(a.ns, topo.host('r').ns, 'fd00:231:60:1::2')).toBe(true);
    expect((await b.exec('sysctl', ['-n', 'net.ipv4.tcp_ecn'])).stdout.trim()).toBe('1');
  });

  it('host.exec returns exit code and output; bad input is refused before anything is made', async () => {
    await using topo = await createTopology({
      hosts: ['a', 'b'],
      links: [{ between: ['a', 'b'] }],
      dir: dirs.dir,
      recordDir: dirs.recordDir,
    });
    const r = await topo.host('a').exec('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toEqual({ code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' });
    await expect(topo.host('a').exec('no-such-command-podnet')).rejects.toMatchObject({
      code: 'ENOENT',
    });
    await expect(topo.host('a').sysctl('net.nope.x', 1)).rejects.toMatchObject({
      code: 'ERR_PODNET_INVALID_ARGUMENT',
    });
    expect(() => topo.host('zz')).toThrow(/no host 'zz'/);
    for (const bad of [
      { hosts: ['a', 'a'], links: [] },
      { hosts: ['A'], links: [] },
      { hosts: ['a', 'b'], links: [{ between: ['a', 'c'] }] },
      { hosts: ['a', 'b'], links: [{ between: ['a', 'b'], subnet: '10.0.0.0/8' }] },
      { hosts: ['a', 'b'], links: [{ between: ['a', 'b'] }], routers: ['x'] },
    ] as const)
      await expect(
        createTopology({ ...(bad as object), dir: dirs.dir, recordDir: dirs.recordDir } as never),
      ).rejects.toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
    expect(readdirSync(dirs.dir).length).toBe(2);
    await expect(topo.links[0]!.impair({ loss: 101 })).rejects.toMatchObject({
      code: 'ERR_PODNET_INVALID_ARGUMENT',
    });
  });

  it('the next createTopology sweeps a topology whose runner is dead', async () => {
    const orphan = await tempNamespace({ dir: dirs.dir });
    orphan.close();
    // A runner that has exited: its pid is gone (or another process's, with another start time).
    const dead = spawn('true');
    const pid = dead.pid!;
    const startTime = processIdentity(pid).startTime;
    await new Promise((r) => dead.once('exit', r));
    await writeRecord(dirs.recordDir, '0123456789abcdef', {
      version: 1,
      owner: { pid, startTime: startTime || '1' },
      namespaces: [orphan.path],
    });
    await using topo = await createTopology({ hosts: 1, dir: dirs.dir, recordDir: dirs.recordDir });
    expect(existsSync(orphan.path)).toBe(false);
    expect(readdirSync(dirs.recordDir)).toEqual([topo.record.split('/').pop()]);
    // Nothing of a live runner is swept.
    expect((await sweepTopologies({ dir: dirs.recordDir })).removedTopologies).toEqual([]);
  });

  it('podnet gc removes the topology of a dead runner, and says so', async () => {
    const orphan = await tempNamespace({ dir: dirs.dir });
    orphan.close();
    const dead = spawn('true');
    const pid = dead.pid!;
    await new Promise((r) => dead.once('exit', r));
    await writeRecord(dirs.recordDir, 'fedcba9876543210', {
      version: 1,
      owner: { pid, startTime: '1' },
      namespaces: [orphan.path],
    });
    const state = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    try {
      const out = await new Promise<string>((resolve, reject) => {
        const c = spawn(
          process.execPath,
          [`${root}bin/podnet.js`, 'gc', '--json', '--state-dir', state, '--netns-dir', dirs.dir],
          {
            env: { ...process.env, PODNET_TESTING_DIR: dirs.recordDir },
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        let text = '';
        c.stdout!.on('data', (d) => {
          text += d;
        });
        c.once('exit', (code) =>
          code === 0 ? resolve(text) : reject(new Error(`gc exited ${code}`)),
        );
      });
      expect(JSON.parse(out).testTopologies).toEqual({
        removedTopologies: [join(dirs.recordDir, 'fedcba9876543210.json')],
        removedNamespaces: [orphan.path],
        errors: [],
      });
      expect(existsSync(orphan.path)).toBe(false);
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('after the runner is SIGKILLed, the reaper leaves no namespace, link or record within 2 s', async () => {
    // The runner: a Node child that builds a two-host topology from the build in dist/ and waits.
    const script = `
      const { createTopology } = await import(${JSON.stringify(`${root}dist/testing/index.js`)});
      const t = await createTopology({ hosts: ['a', 'b'], links: [{ between: ['a', 'b'] }], dir: process.argv[1], recordDir: process.argv[2] });
      process.stdout.write(JSON.stringify(t.hosts.map((h) => h.ns.path)) + '\\n');
      setInterval(() => {}, 1000);`;
    const child: ChildProcess = spawn(
      process.execPath,
      ['--input-type=module', '-e', script, dirs.dir, dirs.recordDir],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const paths: string[] = await new Promise((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out));
      });
      child.once('exit', (code) => reject(new Error(`runner exited ${code}`)));
    });
    expect(paths.every((p) => existsSync(p))).toBe(true);
    expect(readdirSync(dirs.recordDir)).toHaveLength(1);
    const reaper = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .find((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dirs.recordDir);
        } catch {
          return false;
        }
      });
    expect(reaper).toBeDefined();
    const t0 = Date.now();
    child.kill('SIGKILL');
    const left = (): string[] => [
      ...paths.filter((p) => existsSync(p)),
      ...readdirSync(dirs.recordDir),
      ...(existsSync(`/proc/${reaper}`) ? [`reaper ${reaper}`] : []),
    ];
    while (left().length && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    const took = Date.now() - t0;
    expect(left()).toEqual([]);
    console.log(`reaper: topology gone ${took} ms after SIGKILL`);
  });

  it("an unprivileged user's routed topology in one user namespace; gone within 2 s of the runner's SIGKILL", async () => {
    // uid 65534 (nobody): a real unprivileged user, for whom the build in dist/ is readable.
    const why = reportSkip(
      'the unprivileged topology test',
      existsSync('/usr/bin/setpriv') ? undefined : 'setpriv (util-linux) is not installed',
    );
    if (why) return;
    const script = `
      const { createTopology } = await import(${JSON.stringify(`${root}dist/testing/index.js`)});
      const net = await import('node:net');
      const t = await createTopology({ hosts: ['a', 'r', 'b'], links: [{ between: ['a', 'r'] }, { between: ['r', 'b'] }], routers: ['r'], dualStack: true, userns: true });
      const [a, , b] = t.hosts;
      const srv = net.createServer((s) => s.end('hi'));
      const { port } = await b.ns.listen(srv, { host: b.address6 });
      const c = await a.ns.connect({ host: b.address6, port });
      let got = '';
      for await (const d of c) got += d;
      const id = (await a.exec('id', ['-u'])).stdout.trim();
      process.stdout.write(JSON.stringify({ got, uid: process.getuid(), id }) + '\\n');
      setInterval(() => {}, 1000);`;
    const child = spawn(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: '/' },
      },
    );
    const report = await new Promise<{ got: string; uid: number; id: string }>(
      (resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(JSON.parse(out));
        });
        child.once('exit', (code) => reject(new Error(`runner exited ${code}`)));
      },
    );
    // Traffic through the router over IPv6; commands run as root of the user namespace.
    expect(report).toEqual({ got: 'hi', uid: 65534, id: '0' });
    const helpers = (): string[] =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return (
              readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('podnet-userns') &&
              /^Uid:\s+65534\s/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))
            );
          } catch {
            return false;
          }
        });
    expect(helpers()).toHaveLength(3);
    const t0 = Date.now();
    child.kill('SIGKILL');
    while (helpers().length && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    expect(helpers()).toEqual([]);
  });
});
