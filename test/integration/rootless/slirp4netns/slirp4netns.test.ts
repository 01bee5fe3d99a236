import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NetworkNamespace } from '../../../../src/netns/index.js';
import {
  EngineStartError,
  Slirp4netns,
  Slirp4netnsApiError,
  type Slirp4netnsBinary,
  type Slirp4netnsExit,
} from '../../../../src/rootless/index.js';
import { echoServer, engineEnvPerTest } from '../../../helpers/engine-env.js';
import { fixture } from '../../../helpers/fixtures.js';
import { freePort, inNetns, ipAddrs, isRoot, TEST_PREFIX } from '../../../helpers/host.js';
import { processGroup, run } from '../../../helpers/process.js';

/** Sends `text` on `sock` and resolves with what comes back before the peer closes. */
async function echo(sock: net.Socket, text: string): Promise<string> {
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve, reject) => {
    sock.once('end', () => resolve());
    sock.once('error', reject);
  });
  sock.end(text);
  await closed;
  sock.destroy();
  return Buffer.concat(chunks).toString();
}

/** Resolves true when a connection succeeds within `ms`, false when it is refused or hangs. */
async function connects(open: () => Promise<net.Socket>, ms = 3000): Promise<boolean> {
  let sock: net.Socket | undefined;
  const attempt = open().then(
    (s) => {
      sock = s;
      return true;
    },
    () => false,
  );
  const result = await Promise.race([attempt, sleep(ms, false)]);
  sock?.destroy();
  return result;
}

function hostConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => resolve(sock));
    sock.once('error', reject);
  });
}

describe.skipIf(!isRoot)('Slirp4netns', () => {
  let runDir: string;
  let ns: NetworkNamespace | undefined;
  const env = engineEnvPerTest<Slirp4netns>((state) => {
    ({ runDir, ns } = state);
  });
  const { serve, children } = env;
  const start = async (opts: Parameters<typeof Slirp4netns.start>[0]) =>
    env.track(await Slirp4netns.start({ apiSocketDir: runDir, ...opts }));

  it('attaches by path: tap0 up with 10.0.2.100/24 and a default route; stop closes the exit fd', async () => {
    const slirp = await start({ netns: ns!.path });
    expect(slirp.running).toBe(true);
    expect(slirp.apiSocket).toBeUndefined();
    expect(slirp.args).toContain('--disable-host-loopback');
    // The sandbox detaches its old root: run in a private mount namespace, that
    // must not unmount the (shared) namespace mounts of the host, ours included.
    expect(slirp.args).toContain('--enable-sandbox');
    expect(await run(['findmnt', '-rn', '-o', 'FSTYPE', ns!.path])).toBe('nsfs\n');

    const addrs = await ipAddrs(ns!.path);
    const tap = addrs.find((a) => a.ifname === 'tap0');
    expect(tap?.flags).toContain('UP');
    expect(tap?.mtu).toBe(65520);
    expect(tap?.addr_info).toContainEqual(
      expect.objectContaining({ family: 'inet', local: '10.0.2.100', prefixlen: 24 }),
    );
    const routes = JSON.parse(await inNetns(ns!.path, ['ip', '-j', 'route'])) as {
      dst: string;
      gateway?: string;
      dev: string;
    }[];
    expect(routes).toContainEqual(
      expect.objectContaining({ dst: 'default', gateway: '10.0.2.2', dev: 'tap0' }),
    );
    expect(ns!.linkStatsSync('tap0').rxPackets).toBeTypeOf('number');
    const logDir = join(slirp.logPath, '..');
    expect(existsSync(slirp.logPath)).toBe(true);

    const exit = await slirp.stop();
    // It left on its own when the exit fd closed, rather than being killed.
    expect(exit).toEqual({ code: 0, signal: null, requested: true });
    expect(slirp.running).toBe(false);
    expect(existsSync(logDir)).toBe(false);
    expect(await slirp.stop()).toBe(exit);
  });

  it('attaches by pid', async () => {
    const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    children.push(holder);
    const mine = readlinkSync('/proc/self/ns/net');
    // unshare execs sleep in place once the namespace is made.
    for (let i = 0; i < 200 && readlinkSync(`/proc/${holder.pid}/ns/net`) === mine; i++) {
      await sleep(10);
    }
    const slirp = await start({ pid: holder.pid! });
    expect(slirp.args.slice(-2)).toEqual([String(holder.pid), 'tap0']);
    const addrs = await ipAddrs(`/proc/${holder.pid}/ns/net`, 'tap0');
    expect(addrs[0]?.addr_info).toContainEqual(
      expect.objectContaining({ family: 'inet', local: '10.0.2.100', prefixlen: 24 }),
    );
  });

  it("reaches the host's loopback as 10.0.2.2 only with allow_host_loopback=true", async () => {
    const server = serve(echoServer());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as net.AddressInfo;

    const closed = await start({ netns: ns!.path });
    expect(await connects(() => ns!.connect({ host: '10.0.2.2', port }))).toBe(false);
    await closed.stop();

    await start({ netns: ns!.path, options: ['allow_host_loopback=true'] });
    const sock = await ns!.connect({ host: '10.0.2.2', port });
    expect(await echo(sock, 'hello host')).toBe('hello host');
  });

  it('forwards a host port into the namespace through the API, and lists and removes it', async () => {
    const inside = serve(echoServer());
    const { port: guestPort } = await ns!.listen(inside, { host: '0.0.0.0', port: 0 });
    const slirp = await start({ netns: ns!.path, options: ['port_handler=slirp4netns'] });
    expect(slirp.apiSocket).toBeDefined();

    const hostPort = await freePort();
    const id = await slirp.addPortForward({
      proto: 'tcp',
      hostAddr: '127.0.0.1',
      hostPort,
      guestAddr: '10.0.2.100',
      guestPort,
    });
    expect(await echo(await hostConnect(hostPort), 'hello guest')).toBe('hello guest');
    expect(await slirp.listPortForwards()).toEqual([
      { id, proto: 'tcp', hostAddr: '127.0.0.1', hostPort, guestAddr: '10.0.2.100', guestPort },
    ]);

    await slirp.removePortForward(id);
    expect(await slirp.listPortForwards()).toEqual([]);
    expect(await connects(() => hostConnect(hostPort))).toBe(false);
    await expect(slirp.removePortForward(id)).rejects.toThrow(Slirp4netnsApiError);
    await expect(slirp.removePortForward(id)).rejects.toMatchObject({
      code: 'ERR_PODNET_SLIRP4NETNS_API',
      desc: expect.stringContaining('bad arguments.id'),
    });
  });

  it('reports at once when slirp4netns is killed, and stop() still cleans up', async () => {
    const slirp = await start({ netns: ns!.path, options: ['port_handler=slirp4netns'] });
    const events: Slirp4netnsExit[] = [];
    slirp.on('exit', (e) => events.push(e));
    const t0 = Date.now();
    process.kill(slirp.pid, 'SIGKILL');
    const exit = await slirp.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', requested: false });
    expect(events).toEqual([exit]);
    expect(existsSync(slirp.apiSocket!)).toBe(true);
    expect(await slirp.stop()).toBe(exit);
    expect(existsSync(slirp.apiSocket!)).toBe(false);
    expect(processGroup(slirp.pid)).toEqual([]);
  });
});

describe.skipIf(!isRoot)('Slirp4netns with a broken binary', () => {
  let runDir: string;

  beforeEach(() => {
    runDir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  });
  afterEach(() => {
    expect(readdirSync(runDir)).toEqual([]);
    rmSync(runDir, { recursive: true, force: true });
  });

  /** A probe result for a fake binary, as if it were slirp4netns 1.2.0. */
  const fake = async (name: string): Promise<Slirp4netnsBinary> => ({
    ...(await Slirp4netns.probe(fixture('rootless/slirp4netns-hang'))),
    path: fixture(`rootless/${name}`),
  });
  const startError = async (opts: Parameters<typeof Slirp4netns.start>[0]) => {
    const err = await Slirp4netns.start({ apiSocketDir: runDir, ...opts }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    return err as EngineStartError;
  };

  it('garbage: the probe is a typed error, and a start fails at once with its log', async () => {
    await expect(Slirp4netns.probe(fixture('rootless/slirp4netns-garbage'))).rejects.toMatchObject({
      code: 'ERR_PODNET_ENGINE_PROBE',
      engine: 'slirp4netns',
    });
    const t0 = Date.now();
    const err = await startError({ pid: process.pid, binary: await fake('slirp4netns-garbage') });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(err).toBeInstanceOf(EngineStartError);
    expect(err).toMatchObject({
      code: 'ERR_PODNET_ENGINE_START',
      engine: 'slirp4netns',
      reason: 'exited',
      exitCode: 3,
    });
    expect(err.log).toContain('this is not slirp4netns');
    expect(err.message).toContain('this is not slirp4netns');
  });

  it('hang: the deadline kills it and its whole process group', async () => {
    const t0 = Date.now();
    const err = await startError({
      pid: process.pid,
      binary: fixture('rootless/slirp4netns-hang'),
      options: ['port_handler=slirp4netns'],
      timeoutMs: 500,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toMatchObject({
      code: 'ERR_PODNET_ENGINE_START',
      engine: 'slirp4netns',
      reason: 'timeout',
    });
    expect(err.log).toContain('pretending to start');
    expect(processGroup(err.pid!)).toEqual([]);
  });

  it('an abort while waiting kills it too', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const t0 = Date.now();
    const err = await startError({
      pid: process.pid,
      binary: fixture('rootless/slirp4netns-hang'),
      signal: ac.signal,
    });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toMatchObject({ code: 'ERR_PODNET_ABORTED' });
  });

  it('/dev/net/tun at mode 0600: the error says to chmod it', async () => {
    const err = await startError({
      pid: process.pid,
      binary: fixture('rootless/slirp4netns-notun'),
    });
    expect(err).toMatchObject({
      code: 'ERR_PODNET_ENGINE_START',
      engine: 'slirp4netns',
      reason: 'exited',
      exitCode: 1,
    });
    expect(err.message).toContain('chmod 0666 /dev/net/tun');
  });

  it('a missing binary is a typed error', async () => {
    await expect(
      Slirp4netns.start({ pid: process.pid, binary: join(runDir, 'none'), apiSocketDir: runDir }),
    ).rejects.toMatchObject({ code: 'ERR_PODNET_ENGINE_MISSING', engine: 'slirp4netns' });
  });
});
