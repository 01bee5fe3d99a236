import { spawn } from 'node:child_process';
import { existsSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AggregatePodnetError, NetworkNamespace } from '../../../src/index.js';
import { inNetns, isRoot, readFromLoopback } from '../../helpers/host.js';
import { ifaceInfo, type NetEnv, netEnvPerTest } from '../../helpers/network-env.js';
import { run } from '../../helpers/process.js';
import { containerState } from '../../helpers/state.js';

const dist = new URL('../../../dist/index.js', import.meta.url).href;

/** Runs a setup in a child process; DIE_AT makes it SIGKILL itself at that setup phase. */
function childSetup(
  env: NetEnv,
  setup: Record<string, unknown>,
  dieAt?: string,
): Promise<number | null> {
  const script = `
    import dc from 'node:diagnostics_channel';
    const { Networking, CniRuntime } = await import(${JSON.stringify(dist)});
    const [o, setup, dieAt] = JSON.parse(process.argv[1]);
    dc.subscribe('podnet:network:setup', (m) => { if (m.phase === dieAt) process.kill(process.pid, 'SIGKILL'); });
    const nw = new Networking({ cni: new CniRuntime({ confDir: o.confDir, cacheDir: o.cacheDir, pluginDirs: o.pluginDirs }),
      stateDir: o.stateDir, netnsDir: o.netnsDir, defaultNetwork: o.defaultNetwork, driver: o.driver });
    const a = await nw.setup(setup);
    a.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', script, JSON.stringify([env.options, setup, dieAt])],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(signal === 'SIGKILL' ? null : code));
  });
}

// Every case runs for both drivers; those that need a fake plugin, for the plugins only.
describe.skipIf(!isRoot).each(['cni', 'native'] as const)('Networking (%s driver)', (driver) => {
  const envs = netEnvPerTest(driver);

  it('bridge mode on two networks: static IP and MAC on eth0, inspect, stats, teardown leaves nothing', async () => {
    const env = await envs.use(2);
    const [n0, n1] = env.networks as [
      NonNullable<NetEnv['networks'][0]>,
      NonNullable<NetEnv['networks'][0]>,
    ];
    const nw = env.net();
    const a = await nw.setup({
      id: 'ctr-multi',
      name: 'multi',
      networks: [n0.name, n1.name],
      staticIP: `${n0.prefix}.77`,
      staticMAC: '02:42:ac:11:00:77',
      portMappings: [{ hostPort: 18080, containerPort: 80 }],
      exposedPorts: [{ port: 443 }],
    });
    const eth0 = await ifaceInfo(a.state.netnsPath, 'eth0');
    expect(eth0.cidrs).toEqual([`${n0.prefix}.77/24`]);
    expect(eth0.mac).toBe('02:42:ac:11:00:77');
    const eth1 = await ifaceInfo(a.state.netnsPath, 'eth1');
    expect(eth1.cidrs[0]).toMatch(new RegExp(`^${n1.prefix.replaceAll('.', '\\.')}\\.\\d+/24$`));

    const inspect = a.inspect();
    expect(inspect).toMatchObject({
      SandboxKey: a.state.netnsPath,
      IPAddress: `${n0.prefix}.77`,
      IPPrefixLen: 24,
      Gateway: `${n0.prefix}.1`,
      MacAddress: '02:42:ac:11:00:77',
      Ports: { '80/tcp': [{ HostIp: '', HostPort: '18080' }], '443/tcp': null },
    });
    expect(Object.keys(inspect.Networks ?? {})).toEqual([n0.name, n1.name]);
    expect(inspect.Networks?.[n1.name]).toMatchObject({
      NetworkID: n1.name,
      IPAddress: eth1.cidrs[0]!.split('/')[0],
      MacAddress: eth1.mac,
    });

    // Traffic from the host to the container's address on the test's bridge.
    const server = net.createServer((s) => s.end('x'.repeat(50_000)));
    await a.netns!.listen(server, { host: `${n0.prefix}.77`, port: 8080 });
    const got = await new Promise<number>((resolve, reject) => {
      let n = 0;
      const s = net.connect(8080, `${n0.prefix}.77`);
      s.on('data', (d) => {
        n += d.length;
      });
      s.on('end', () => resolve(n));
      s.on('error', reject);
    });
    server.close();
    expect(got).toBe(50_000);
    const stats = await a.stats();
    expect(stats.interfaces.map((i) => i.name)).toEqual(['eth0', 'eth1']);
    expect(stats.interfaces[0]!.stats.txBytes).toBeGreaterThanOrEqual(50_000);
    expect(stats.total.txBytes).toBeGreaterThanOrEqual(stats.interfaces[0]!.stats.txBytes);

    // Another Networking (as another process would) sees the same state.
    const loaded = await env.net().load('ctr-multi');
    expect(loaded.inspect()).toEqual(inspect);
    expect((await nw.list()).map((s) => s.id)).toEqual(['ctr-multi']);
    await loaded.teardown();
    await a.teardown(); // twice is fine
    expect(existsSync(a.state.netnsPath)).toBe(false);
    await expect(nw.load('ctr-multi')).rejects.toMatchObject({
      code: 'ERR_PODNET_NO_SUCH_CONTAINER',
    });
  });

  it('a one-shot requested IP is used once, not by the next setup', async () => {
    const env = await envs.use(1);
    const n0 = env.networks[0]!;
    const nw = env.net();
    const first = await nw.setup({ id: 'restore', name: 'r', requestedIP: `${n0.prefix}.200` });
    expect(first.inspect().IPAddress).toBe(`${n0.prefix}.200`);
    expect(first.state.staticIP).toBeUndefined();
    await first.teardown();
    const second = await nw.setup({ id: 'restore', name: 'r' });
    expect(second.inspect().IPAddress).not.toBe(`${n0.prefix}.200`);
    expect(second.inspect().Networks).toBeUndefined(); // no networks were named
    await second.teardown();
  });

  it("'none' has only lo, up; empty stats and inspect", async () => {
    const env = await envs.use(0);
    const a = await env.net().setup({ id: 'none', name: 'none', mode: 'none' });
    const links = await a.netns!.links();
    expect(links.map((l) => [l.name, l.up])).toEqual([['lo', true]]);
    expect((await a.stats()).interfaces).toEqual([]);
    expect(a.inspect()).toMatchObject({
      IPAddress: '',
      MacAddress: '',
      Ports: {},
      SandboxKey: a.state.netnsPath,
    });
    await a.teardown();
    expect(existsSync(a.state.netnsPath)).toBe(false);
  });

  it('{ pid } attaches the namespace of a process; teardown unmounts it and leaves the process', async () => {
    const env = await envs.use(1);
    const child = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    try {
      const host = readlinkSync('/proc/self/ns/net');
      for (let i = 0; i < 100 && readlinkSync(`/proc/${child.pid}/ns/net`) === host; i++)
        await new Promise((r) => setTimeout(r, 10));
      const a = await env.net().setup({ id: 'bypid', name: 'p', mode: { pid: child.pid! } });
      expect(statSync(a.state.netnsPath).ino).toBe(statSync(`/proc/${child.pid}/ns/net`).ino);
      const addr = a.inspect().IPAddress;
      expect(addr.startsWith(env.networks[0]!.prefix)).toBe(true);
      const inside = await inNetns(`/proc/${child.pid}/ns/net`, [
        'ip',
        '-j',
        'addr',
        'show',
        'dev',
        'eth0',
      ]);
      expect(inside).toContain(addr);
      await a.teardown();
      expect(existsSync(a.state.netnsPath)).toBe(false);
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('{ path } and { container } join without configuring; a cycle is an error', async () => {
    const env = await envs.use(1);
    const nw = env.net();
    const outside = await NetworkNamespace.create({ dir: env.netnsDir, name: 'outside' });
    const joined = await nw.setup({ id: 'joined', name: 'j', mode: { path: outside.path } });
    expect(joined.state.ownsNetns).toBe(false);
    expect(joined.results).toEqual([]);
    await joined.teardown();
    expect(existsSync(outside.path)).toBe(true); // not podnet's to remove
    await outside.remove();

    const owner = await nw.setup({ id: 'owner', name: 'o' });
    const b = await nw.setup({ id: 'b', name: 'b', mode: { container: 'owner' } });
    const c = await nw.setup({ id: 'c', name: 'c', mode: { container: 'b' } });
    expect([b.state.netnsPath, c.state.netnsPath]).toEqual([
      owner.state.netnsPath,
      owner.state.netnsPath,
    ]);
    await c.teardown();
    await b.teardown();
    expect(existsSync(owner.state.netnsPath)).toBe(true);
    await owner.teardown();

    // Hand-made states pointing at each other: refused, not followed forever.
    for (const [id, other] of [
      ['x', 'y'],
      ['y', 'x'],
    ] as const) {
      writeFileSync(
        join(env.stateDir, `${id}.json`),
        JSON.stringify(
          containerState({
            id,
            name: id,
            mode: { container: other },
            netnsPath: '',
            ownsNetns: false,
          }),
        ),
      );
    }
    await expect(nw.setup({ id: 'z', name: 'z', mode: { container: 'x' } })).rejects.toMatchObject({
      code: 'ERR_PODNET_NAMESPACE_CYCLE',
    });
    await nw.store.remove('x');
    await nw.store.remove('y');
  });

  it('host port 0 is a free port chosen at setup: recorded, shown by inspect, given to portmap, reached from loopback', async () => {
    const env = await envs.use(1);
    const nw = env.net();
    const a = await nw.setup({
      id: 'ctr-free',
      name: 'free',
      portMappings: [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: 80 }],
    });
    try {
      const [mapping] = a.state.portMappings;
      expect(mapping!.hostPort).toBeGreaterThan(0);
      expect(a.inspect().Ports).toEqual({
        '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(mapping!.hostPort) }],
      });
      expect(a.state.networks[0]!.runtime.capabilityArgs['portMappings']).toEqual([
        { hostIP: '127.0.0.1', hostPort: mapping!.hostPort, containerPort: 80, protocol: 'tcp' },
      ]);
      expect((await nw.store.read('ctr-free'))?.portMappings).toEqual(a.state.portMappings);
      const inside = await NetworkNamespace.open(a.state.netnsPath);
      const server = net.createServer((s) => s.end('inside'));
      try {
        await inside.listen(server, { port: 80 });
        expect(await readFromLoopback(mapping!.hostPort)).toBe('inside');
      } finally {
        server.close();
        inside.close();
      }
    } finally {
      await a.teardown();
    }
  });

  it('bad input is refused before anything is made', async () => {
    const env = await envs.use(1);
    const nw = env.net();
    for (const bad of [
      { id: '../x', name: 'x' },
      { id: 'x', name: 'x', networks: ['nope'] },
      { id: 'x', name: 'x', staticIP: '10.0.0.300' },
      { id: 'x', name: 'x', staticMAC: '02:42' },
      { id: 'x', name: 'x', portMappings: [{ hostPort: 0, containerPort: 80, range: 2 }] },
      {
        id: 'x',
        name: 'x',
        portMappings: [
          { hostPort: 8080, containerPort: 80 },
          { hostIP: '127.0.0.1', hostPort: 8080, containerPort: 81 },
        ],
      },
      // A free port is chosen only once the rest is known to be good.
      {
        id: 'x',
        name: 'x',
        networks: ['nope'],
        portMappings: [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: 80 }],
      },
      { id: 'x', name: 'x', mode: 'none' as const, networks: [env.networks[0]!.name] },
      { id: 'x', name: 'x', mode: { pid: -1 } },
    ]) {
      await expect(nw.setup(bad)).rejects.toHaveProperty('code');
    }
    const a = await nw.setup({ id: 'dup', name: 'd' });
    await expect(nw.setup({ id: 'dup', name: 'd' })).rejects.toMatchObject({
      code: 'ERR_PODNET_CONTAINER_EXISTS',
    });
    await a.teardown();
  });

  if (driver === 'cni') {
    for (const failNet of [0, 1, 2]) {
      for (const position of [0, 1, 2]) {
        it(`a plugin failing at position ${position} of network ${failNet} of three leaves nothing`, async () => {
          const env = await envs.use(3, { failAt: [failNet, position] });
          const err = await env
            .net()
            .setup({
              id: `fail-${failNet}-${position}`,
              name: 'f',
              networks: env.networks.map((n) => n.name),
              portMappings: [],
            })
            .catch((e: unknown) => e);
          expect(err).toMatchObject({ code: 'ERR_PODNET_CNI_PLUGIN' });
          expect((err as { cleanupError?: unknown }).cleanupError).toBeUndefined();
          // afterEach asserts no namespace, veth, IPAM lease, cache or state file is left.
        });
      }
    }

    it('a rollback that fails too: the original error, its cleanup as one aggregate error', async () => {
      const flag = join(tmpdir(), `podnet-test-faildel-${process.pid}-${Date.now()}`);
      writeFileSync(flag, '');
      try {
        const env = await envs.use(1, {
          failAt: [0, 1],
          plugin: 'fake-fail-add-del',
          pluginConfig: { failDelWhile: flag },
        });
        const nw = env.net();
        const err = await nw
          .setup({ id: 'faildel', name: 'f', portMappings: [] })
          .catch((e: unknown) => e);
        expect(err).toMatchObject({ code: 'ERR_PODNET_CNI_PLUGIN', cniCode: 7 });
        const cleanup = (err as { cleanupError?: unknown }).cleanupError;
        expect(cleanup).toBeInstanceOf(AggregatePodnetError);
        const agg = cleanup as AggregatePodnetError;
        expect(agg.code).toBe('ERR_PODNET_TEARDOWN');
        expect(agg.errors).toEqual([expect.objectContaining({ code: 'ERR_PODNET_CNI_PLUGIN' })]);
        expect(agg.errors[0]).toMatchObject({ command: 'DEL', cniCode: 11 });
        expect(agg.cause).toBe(agg.errors[0]);
        // The journal is kept: once DEL can succeed, a teardown finishes the job.
        expect((await nw.list()).map((s) => s.id)).toEqual(['faildel']);
        rmSync(flag);
        await (await nw.load('faildel')).teardown();
        expect(await nw.list()).toEqual([]);
      } finally {
        rmSync(flag, { force: true });
      }
    });

    it('an AbortSignal stops a setup while a plugin runs, and everything is undone', async () => {
      const env = await envs.use(2, { failAt: [1, 1], plugin: 'fake-hang-add' });
      const controller = new AbortController();
      const t0 = Date.now();
      setTimeout(() => controller.abort(), 500);
      const err = await env
        .net()
        .setup({
          id: 'aborted',
          name: 'a',
          networks: env.networks.map((n) => n.name),
          signal: controller.signal,
        })
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_PODNET_ABORTED' });
      expect(Date.now() - t0).toBeLessThan(10_000);
      // afterEach: the first network's ADD was undone too, and no hanging plugin is left.
    });
  }

  for (const dieAt of ['state', 'netns', 'network:1', 'network:2']) {
    it(`gc in a fresh process cleans up after a setup SIGKILLed at '${dieAt}'`, async () => {
      const env = await envs.use(2);
      const names = env.networks.map((n) => n.name);
      const phase = dieAt.startsWith('network:')
        ? `network:${names[Number(dieAt.slice(-1)) - 1]}`
        : dieAt;
      expect(await childSetup(env, { id: 'killed', name: 'k', networks: names }, phase)).toBeNull();
      expect((await env.leftovers()).length).toBeGreaterThan(0);
      // The state says a setup is under way, but its owner is dead: gc finishes it.
      const report = await env.net().gc();
      expect(report.errors).toEqual([]);
      expect(report.removedStates).toEqual(['killed']);
    });
  }

  it('after an unclean reboot, gc frees the leases so the same static IP can be taken again', async () => {
    const env = await envs.use(1);
    const ip = `${env.networks[0]!.prefix}.42`;
    expect(await childSetup(env, { id: 'before-reboot', name: 'r', staticIP: ip })).toBe(0);
    // The reboot: tmpfs state and namespace mounts are gone, /var/lib/cni stays.
    const state = JSON.parse(await run(['cat', join(env.stateDir, 'before-reboot.json')]));
    await run(['umount', state.netnsPath]);
    await run(['rm', state.netnsPath, join(env.stateDir, 'before-reboot.json')]);
    // The veth died with its namespace; the lease did not.
    const nw = env.net();
    await expect(nw.setup({ id: 'after-reboot', name: 'r', staticIP: ip })).rejects.toBeDefined();
    const report = await nw.gc();
    expect(report.releasedAttachments).toEqual([
      { network: env.networks[0]!.name, containerId: 'before-reboot', ifName: 'eth0' },
    ]);
    const again = await nw.setup({ id: 'after-reboot', name: 'r', staticIP: ip });
    expect(again.inspect().IPAddress).toBe(ip);
    await again.teardown();
  });

  it('gc removes only namespaces a journal names: running setups and unnamed cni-* mounts stay', async () => {
    const env = await envs.use(1);
    const nw = env.net();
    const live = await nw.setup({ id: 'live', name: 'l' });
    // podman names its namespaces cni-* too: one no state names is not podnet's.
    const stray = await NetworkNamespace.create({ dir: env.netnsDir, name: 'cni-stray' });
    stray.close();
    const report = await nw.gc();
    expect(report).toMatchObject({ removedMounts: [], removedStates: [], errors: [] });
    expect(existsSync(live.state.netnsPath)).toBe(true);
    await (await NetworkNamespace.open(stray.path)).remove();
    await live.teardown();
  });
});
