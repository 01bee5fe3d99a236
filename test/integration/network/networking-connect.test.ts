// A running container's networks changing: connect a second network (eth1
// appears, eth0 and its traffic untouched), disconnect it (eth1 gone, its
// lease freed), per-network static settings in setup, a connect SIGKILLed
// midway and finished by gc, and bad input refused with nothing changed.
// Each case runs for both drivers, on the real plugins or the native driver.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Attachment } from '../../../src/index.js';
import { fixture } from '../../helpers/fixtures.js';
import { ipAddrs, isRoot } from '../../helpers/host.js';
import { ifaceInfo, type NetEnv, netEnvPerTest } from '../../helpers/network-env.js';

const dist = new URL('../../../dist/index.js', import.meta.url).href;
const DIE_AT = fixture('network/die-at.mjs');

/** Whether the namespace has an interface of that name. */
async function hasLink(netnsPath: string, ifname: string): Promise<boolean> {
  return (await ipAddrs(netnsPath)).some((l) => l.ifname === ifname);
}

/** The leased addresses of a network in the env's host-local data dir. */
function leases(env: NetEnv, network: string): string[] {
  const dir = join(env.dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes('.'));
}

/** A TCP round trip from the host to ADDR:8080, served inside the container. */
async function roundTrip(a: Attachment, addr: string): Promise<string> {
  const server = net.createServer((s) => s.end('pong'));
  await a.netns!.listen(server, { host: addr, port: 8080 });
  try {
    return await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = net.connect(8080, addr);
      s.on('data', (d) => {
        got += d.toString();
      });
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
  } finally {
    server.close();
  }
}

/** Runs connect (or disconnect) in a child process that SIGKILLs itself at CHANNEL#PHASE. */
function childConnect(
  env: NetEnv,
  id: string,
  network: string,
  dieAt: string,
  action: 'connect' | 'disconnect' = 'connect',
): Promise<number | null> {
  const script = `
    const { Networking, CniRuntime } = await import(${JSON.stringify(dist)});
    const [o, id, network] = JSON.parse(process.argv[1]);
    const nw = new Networking({ cni: new CniRuntime({ confDir: o.confDir, cacheDir: o.cacheDir, pluginDirs: o.pluginDirs }),
      stateDir: o.stateDir, netnsDir: o.netnsDir, defaultNetwork: o.defaultNetwork, driver: o.driver });
    await nw[${JSON.stringify(action)}](id, network);`;
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', script, JSON.stringify([env.options, id, network])],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: { ...process.env, NODE_OPTIONS: `--import=${DIE_AT}`, PODNET_TEST_DIE_AT: dieAt },
      },
    );
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(signal === 'SIGKILL' ? null : code));
  });
}

describe.skipIf(!isRoot).each(['cni', 'native'] as const)(
  'connect and disconnect (%s driver)',
  (driver) => {
    const envs = netEnvPerTest(driver);

    it('connect adds eth1 with its address, eth0 and its traffic unchanged; disconnect removes it and frees its lease', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({ id: 'ctr-conn', name: 'conn', networks: [n0!.name] });
      const path = a.state.netnsPath;
      const eth0 = await ifaceInfo(path, 'eth0');
      const ip0 = eth0.cidrs[0]!.split('/')[0]!;
      expect(await roundTrip(a, ip0)).toBe('pong');

      const attached = await nw.connect('ctr-conn', n1!.name, { mac: '02:42:ac:11:01:05' });
      expect(attached.ifName).toBe('eth1');
      const eth1 = await ifaceInfo(path, 'eth1');
      expect(eth1.cidrs[0]).toMatch(new RegExp(`^${n1!.prefix.replaceAll('.', '\\.')}\\.\\d+/24$`));
      expect(eth1.mac).toBe('02:42:ac:11:01:05');
      expect(await ifaceInfo(path, 'eth0')).toEqual(eth0);
      expect(await roundTrip(a, ip0)).toBe('pong');
      const ip1 = eth1.cidrs[0]!.split('/')[0]!;
      expect(await roundTrip(a, ip1)).toBe('pong');
      expect(leases(env, n1!.name)).toEqual([ip1]);

      // Another process sees it: state, inspect, stats.
      const loaded = await env.net().load('ctr-conn');
      expect(loaded.state.networks.map((n) => [n.name, n.ifName])).toEqual([
        [n0!.name, 'eth0'],
        [n1!.name, 'eth1'],
      ]);
      expect(loaded.inspect().Networks?.[n1!.name]).toMatchObject({
        IPAddress: ip1,
        MacAddress: '02:42:ac:11:01:05',
      });
      expect((await loaded.stats()).interfaces.map((i) => i.name)).toEqual(['eth0', 'eth1']);
      loaded.close();

      await nw.disconnect('ctr-conn', n1!.name);
      expect(await hasLink(path, 'eth1')).toBe(false);
      expect(leases(env, n1!.name)).toEqual([]);
      expect(await ifaceInfo(path, 'eth0')).toEqual(eth0);
      expect(await roundTrip(a, ip0)).toBe('pong');
      const reloaded = await nw.load('ctr-conn');
      expect(reloaded.state.networks.map((n) => n.name)).toEqual([n0!.name]);
      reloaded.close(); // a handle's fd would keep the namespace, and its veths, alive

      // The lowest free ethN is taken again; teardown removes what connect added.
      expect((await nw.connect('ctr-conn', n1!.name)).ifName).toBe('eth1');
      await a.teardown();
      // afterEach: no lease, cache entry, state, namespace or veth left.
    });

    it('per-network static IP and MAC on two networks, podman spelling; flat options keep the first-network rule', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({
        id: 'ctr-static',
        name: 'static',
        networks: {
          [n0!.name]: { ip: `${n0!.prefix}.21`, mac: '02:42:ac:11:02:21' },
          [n1!.name]: { ip: `${n1!.prefix}.22`, mac: '02:42:ac:11:02:22', interfaceName: 'eth5' },
        },
      });
      const path = a.state.netnsPath;
      expect(await ifaceInfo(path, 'eth0')).toEqual({
        cidrs: [`${n0!.prefix}.21/24`],
        mac: '02:42:ac:11:02:21',
      });
      expect(await ifaceInfo(path, 'eth5')).toEqual({
        cidrs: [`${n1!.prefix}.22/24`],
        mac: '02:42:ac:11:02:22',
      });
      expect(a.state.networks.map((n) => n.ifName)).toEqual(['eth0', 'eth5']);
      await a.teardown();

      const flat = await nw.setup({
        id: 'ctr-flat',
        name: 'flat',
        networks: [n0!.name, n1!.name],
        staticIP: `${n0!.prefix}.31`,
      });
      expect((await ifaceInfo(flat.state.netnsPath, 'eth0')).cidrs).toEqual([
        `${n0!.prefix}.31/24`,
      ]);
      expect((await ifaceInfo(flat.state.netnsPath, 'eth1')).cidrs[0]).not.toBe(
        `${n1!.prefix}.31/24`,
      );
      await flat.teardown();
    });

    it('bad input is a typed one-line error and changes nothing', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({ id: 'ctr-bad', name: 'bad', networks: [n0!.name] });
      const file = join(env.stateDir, 'ctr-bad.json');
      const before = readFileSync(file, 'utf8');
      // Thunks: each call starts once the one before has failed.
      const cases: [() => Promise<unknown>, string][] = [
        [() => nw.connect('ctr-bad', 'no-such-net'), 'ERR_PODNET_CNI_NETWORK_NOT_FOUND'],
        [() => nw.connect('ctr-bad', n0!.name), 'ERR_PODNET_ALREADY_CONNECTED'],
        [() => nw.connect('ctr-bad', n1!.name, { ip: '10.1.2' }), 'ERR_PODNET_INVALID_ARGUMENT'],
        [() => nw.connect('ctr-bad', n1!.name, { mac: 'zz:zz' }), 'ERR_PODNET_INVALID_ARGUMENT'],
        [
          () => nw.connect('ctr-bad', n1!.name, { interfaceName: 'eth0' }),
          'ERR_PODNET_INVALID_ARGUMENT',
        ],
        [() => nw.connect('no-such-ctr', n1!.name), 'ERR_PODNET_NO_SUCH_CONTAINER'],
        [() => nw.disconnect('ctr-bad', n1!.name), 'ERR_PODNET_NOT_CONNECTED'],
        [
          () =>
            nw.setup({
              id: 'ctr-bad2',
              name: 'b',
              staticIP: `${n0!.prefix}.60`,
              networks: { [n0!.name]: { ip: `${n0!.prefix}.61` } },
            }),
          'ERR_PODNET_INVALID_ARGUMENT',
        ],
        [
          () =>
            nw.setup({ id: 'ctr-bad2', name: 'b', networks: { [n0!.name]: { ip6: '10.0.0.1' } } }),
          'ERR_PODNET_INVALID_ARGUMENT',
        ],
        [
          () =>
            nw.setup({
              id: 'ctr-bad2',
              name: 'b',
              networks: { [n0!.name]: { color: 'red' } as never },
            }),
          'ERR_PODNET_INVALID_ARGUMENT',
        ],
      ];
      for (const [p, code] of cases) {
        const err = (await p().then(
          () => undefined,
          (e: unknown) => e,
        )) as Error & { code?: string };
        expect(err?.code).toBe(code);
        expect(err.message).not.toContain('\n');
      }
      expect(readFileSync(file, 'utf8')).toBe(before);
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(false);
      expect(leases(env, n1!.name)).toEqual([]);

      // A container without CNI networks cannot be connected.
      const none = await nw.setup({ id: 'ctr-none', name: 'none', mode: 'none' });
      await expect(nw.connect('ctr-none', n1!.name)).rejects.toMatchObject({
        code: 'ERR_PODNET_CANNOT_CONNECT',
      });
      await none.teardown();
      // Nor one that joined a namespace as is ({ path }): podnet attaches nothing there.
      const joined = await nw.setup({
        id: 'ctr-path',
        name: 'p',
        mode: { path: a.state.netnsPath },
      });
      await expect(nw.connect('ctr-path', n1!.name)).rejects.toMatchObject({
        code: 'ERR_PODNET_CANNOT_CONNECT',
      });
      await expect(nw.reload('ctr-path')).rejects.toMatchObject({
        code: 'ERR_PODNET_CANNOT_CONNECT',
      });
      await joined.teardown();
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(false);
      await a.teardown();
    });

    it('a container on the default network connected to another: inspect lists both, with its aliases', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({ id: 'ctr-dflt', name: 'dflt' });
      expect(a.inspect().Networks).toBeUndefined();
      await nw.connect('ctr-dflt', n1!.name, { aliases: ['db'] });
      const loaded = await nw.load('ctr-dflt');
      const networks = loaded.inspect().Networks ?? {};
      loaded.close();
      expect(Object.keys(networks)).toEqual([n0!.name, n1!.name]);
      expect(networks[n1!.name]?.Aliases).toEqual(['db']);
      expect(networks[n0!.name]?.Aliases).toBeUndefined();
      await a.teardown();
    });

    it('a connect that fails midway (its address is taken) is rolled back: no eth1, no lease, state as before', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const holder = await nw.setup({
        id: 'ctr-holder',
        name: 'holder',
        networks: { [n1!.name]: { ip: `${n1!.prefix}.50` } },
      });
      const a = await nw.setup({ id: 'ctr-roll', name: 'roll', networks: [n0!.name] });
      const file = join(env.stateDir, 'ctr-roll.json');
      const before = readFileSync(file, 'utf8');
      const err = (await nw.connect('ctr-roll', n1!.name, { ip: `${n1!.prefix}.50` }).then(
        () => undefined,
        (e: unknown) => e,
      )) as Error & { code?: string; cleanupError?: unknown };
      expect(err?.code).toMatch(/^ERR_PODNET_(ADDRESS_TAKEN|CNI_PLUGIN)$/);
      expect(err.cleanupError).toBeUndefined();
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(false);
      expect(leases(env, n1!.name)).toEqual([`${n1!.prefix}.50`]);
      // Rewritten by the rollback (its keys in another order), the same state.
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(JSON.parse(before));
      await a.teardown();
      await holder.teardown();
    });

    it('a connect SIGKILLed midway is undone by gc; the container keeps eth0', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({ id: 'ctr-kill', name: 'kill', networks: [n0!.name] });
      const eth0 = await ifaceInfo(a.state.netnsPath, 'eth0');
      // After eth1 exists: the bridge plugin has run, or the native driver made the veth.
      const dieAt =
        driver === 'cni' ? 'podnet:network:connect#plugin:1' : 'podnet:bridge:attach#container';
      expect(await childConnect(env, 'ctr-kill', n1!.name, dieAt)).toBeNull();
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(true);
      expect(leases(env, n1!.name)).toHaveLength(1);
      const killed = await nw.load('ctr-kill');
      expect(killed.state.adding?.name).toBe(n1!.name);
      killed.close();

      const report = await env.net().gc();
      expect(report.errors).toEqual([]);
      expect(report.removedStates).toEqual([]);
      expect(report.releasedAttachments).toEqual([
        { network: n1!.name, containerId: 'ctr-kill', ifName: 'eth1' },
      ]);
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(false);
      expect(leases(env, n1!.name)).toEqual([]);
      const after = await nw.load('ctr-kill');
      expect(after.state.adding).toBeUndefined();
      expect(after.state.networks.map((n) => n.name)).toEqual([n0!.name]);
      after.close();
      expect(await ifaceInfo(a.state.netnsPath, 'eth0')).toEqual(eth0);
      // And it can be connected again.
      expect((await nw.connect('ctr-kill', n1!.name)).ifName).toBe('eth1');
      await a.teardown();
    });

    it('a disconnect SIGKILLed once journalled is finished by gc: the interface gone, its lease freed', async () => {
      const env = await envs.use(2);
      const [n0, n1] = env.networks as [NetEnv['networks'][0], NetEnv['networks'][0]];
      const nw = env.net();
      const a = await nw.setup({ id: 'ctr-dkill', name: 'dkill', networks: [n0!.name, n1!.name] });
      const eth0 = await ifaceInfo(a.state.netnsPath, 'eth0');
      const dieAt = 'podnet:network:connect#detaching';
      expect(await childConnect(env, 'ctr-dkill', n1!.name, dieAt, 'disconnect')).toBeNull();
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(true);
      const report = await env.net().gc();
      expect(report.errors).toEqual([]);
      expect(report.releasedAttachments).toEqual([
        { network: n1!.name, containerId: 'ctr-dkill', ifName: 'eth1' },
      ]);
      expect(await hasLink(a.state.netnsPath, 'eth1')).toBe(false);
      expect(leases(env, n1!.name)).toEqual([]);
      expect(await ifaceInfo(a.state.netnsPath, 'eth0')).toEqual(eth0);
      await a.teardown();
    });
  },
);
