import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { AbortError, InvalidArgumentError } from '../../../../src/errors.js';
import type { NetworkNamespace } from '../../../../src/netns/index.js';
import {
  EngineProbeError,
  EngineStartError,
  Pasta,
  type PastaExit,
} from '../../../../src/rootless/index.js';
import { echoServer, engineEnvPerTest } from '../../../helpers/engine-env.js';
import { fixture } from '../../../helpers/fixtures.js';
import { freePort, type IpAddr, ipAddrs, isRoot } from '../../../helpers/host.js';
import { processGroup } from '../../../helpers/process.js';

/** The namespace's interfaces other than lo, as `ip -j addr` reports them. */
async function nonLoopback(path: string): Promise<IpAddr[]> {
  const all = await ipAddrs(path);
  return all.filter((a) => a.ifname !== 'lo');
}

/** Connects to 127.0.0.1:port on the host, sends `text`, resolves with the echo. */
function echoFromHost(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: '127.0.0.1', port }, () => sock.end(text));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.once('end', () => {
      sock.destroy();
      resolve(Buffer.concat(chunks).toString());
    });
    sock.once('error', reject);
  });
}

describe.skipIf(!isRoot)('Pasta', () => {
  let runDir: string;
  let ns: NetworkNamespace | undefined;
  const env = engineEnvPerTest<Pasta>((state) => {
    ({ runDir, ns } = state);
  });
  const { serve, children } = env;
  const start = async (opts: Parameters<typeof Pasta.start>[0]) =>
    env.track(await Pasta.start({ runDir: runDir, ...opts }));

  it('probes the installed pasta (Debian prints no version)', async () => {
    const binary = await Pasta.probe();
    expect(binary.path).toMatch(/\/pasta$/);
    expect(binary.version === undefined || /\S/.test(binary.version)).toBe(true);
  });

  it('attaches by path: an interface up with an address; stop ends it with SIGTERM', async () => {
    const pasta = await start({ netns: ns!.path });
    expect(pasta.running).toBe(true);
    expect(pasta.args).toEqual(
      expect.arrayContaining(['--foreground', '--config-net', '--runas', '--no-map-gw']),
    );
    expect(pasta.args.slice(-3)).toEqual(['--netns', ns!.path, '--netns-only']);

    const links = await nonLoopback(ns!.path);
    expect(links).toHaveLength(1);
    expect(links[0]!.flags).toContain('UP');
    expect(links[0]!.addr_info.some((a) => a.family === 'inet')).toBe(true);
    // The same interface through podnet's own netlink reader.
    expect((await ns!.links()).map((l) => l.name)).toContain(links[0]!.ifname);

    const dir = join(pasta.logPath, '..');
    expect(readdirSync(runDir)).toEqual([dir.slice(runDir.length + 1)]);
    const exited = new Promise<PastaExit>((r) => pasta.once('exit', r));
    const exit = await pasta.stop();
    // pasta exits on its own on SIGTERM, with status 0.
    expect(exit).toEqual({ code: 0, signal: null, requested: true });
    expect(await exited).toBe(exit);
    expect(pasta.running).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(await pasta.stop()).toBe(exit);
    // Its tap interface went with it.
    expect(await nonLoopback(ns!.path)).toEqual([]);
  });

  it('attaches by pid, through a namespace fd podnet opens for it', async () => {
    const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    children.push(holder);
    const mine = readlinkSync('/proc/self/ns/net');
    // unshare execs sleep in place once the namespace is made.
    for (let i = 0; i < 200 && readlinkSync(`/proc/${holder.pid}/ns/net`) === mine; i++) {
      await sleep(10);
    }
    const pasta = await start({ pid: holder.pid! });
    expect(pasta.args.slice(-3)).toEqual(['--netns', '/proc/self/fd/3', '--netns-only']);
    const links = await nonLoopback(`/proc/${holder.pid}/ns/net`);
    expect(links).toHaveLength(1);
    expect(links[0]!.flags).toContain('UP');
  });

  it('publishes a host loopback port (ports) to a server inside; the server sees the peer as 127.0.0.1', async () => {
    const peers: string[] = [];
    await ns!.listen(serve(echoServer(peers)), { port: 8080, host: '0.0.0.0' });
    const hostPort = await freePort();
    const pasta = await start({
      netns: ns!.path,
      ports: [{ hostIP: '127.0.0.1', hostPort, containerPort: 8080 }],
    });
    expect(pasta.args).toEqual(expect.arrayContaining(['-t', `127.0.0.1/${hostPort}:8080`]));
    expect(await echoFromHost(hostPort, 'hello pasta')).toBe('hello pasta');
    // A connection from the host's loopback takes pasta's splice path: pasta
    // connects to the namespace's own loopback, so the server sees 127.0.0.1.
    expect(peers).toEqual(['127.0.0.1']);
  });

  it('publishes ports given as pasta options (-t ADDR/RANGE:RANGE)', async () => {
    const peers: string[] = [];
    await ns!.listen(serve(echoServer(peers)), { port: 9001, host: '127.0.0.1' });
    const hostPort = await freePort();
    await start({ netns: ns!.path, options: ['-t', `127.0.0.1/${hostPort}:9001`] });
    expect(await echoFromHost(hostPort, 'via options')).toBe('via options');
    expect(peers).toEqual(['127.0.0.1']);
  });

  it('forwards nothing from the namespace to the host unless asked (-T)', async () => {
    const peers: string[] = [];
    const hostServer = serve(echoServer(peers));
    await new Promise<void>((r) => hostServer.listen(0, '127.0.0.1', r));
    const { port } = hostServer.address() as net.AddressInfo;
    const reach = async () => {
      try {
        (await ns!.connect({ host: '127.0.0.1', port })).destroy();
        return true;
      } catch {
        return false;
      }
    };
    const closed = await start({ netns: ns!.path });
    expect(await reach()).toBe(false);
    await closed.stop();
    await start({ netns: ns!.path, options: ['-T', String(port)] });
    expect(await reach()).toBe(true);
  });

  it('SIGKILLed: exited settles at once, and stop() still cleans up', async () => {
    const pasta = await start({ netns: ns!.path });
    const dir = join(pasta.logPath, '..');
    const t0 = Date.now();
    process.kill(pasta.pid, 'SIGKILL');
    const exit = await pasta.exited;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(exit).toEqual({ code: null, signal: 'SIGKILL', requested: false });
    expect(pasta.running).toBe(false);
    expect(await pasta.stop()).toBe(exit);
    expect(existsSync(dir)).toBe(false);
  });

  it('ends when its namespace is removed', async () => {
    const pasta = await start({ netns: ns!.path });
    await ns!.remove();
    ns = undefined;
    const exit = await Promise.race([pasta.exited, sleep(5000, 'still running' as const)]);
    expect(exit).toEqual({ code: 0, signal: null, requested: false });
  });

  it('a namespace path that is not one: EngineStartError at once with its log', async () => {
    const notNs = join(runDir, 'not-a-namespace');
    writeFileSync(notNs, '');
    const t0 = Date.now();
    const err = await Pasta.start({ runDir, netns: notNs }).catch((e: unknown) => e);
    rmSync(notNs);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toBeInstanceOf(EngineStartError);
    const e = err as EngineStartError;
    expect(e).toMatchObject({ code: 'ERR_PODNET_ENGINE_START', engine: 'pasta' });
    expect(e.reason).toBe('exited');
    expect(e.log).toMatch(/namespace/i);
    expect(e.message).toContain(e.log.trimEnd());
  });

  it('a garbage binary: probe error; started anyway, it exits and the error carries its output', async () => {
    const probe = await Pasta.start({
      runDir,
      netns: ns!.path,
      binary: fixture('rootless/pasta-garbage'),
    }).catch((e: unknown) => e);
    expect(probe).toBeInstanceOf(EngineProbeError);
    expect(probe).toMatchObject({ code: 'ERR_PODNET_ENGINE_PROBE', engine: 'pasta' });

    const err = await Pasta.start({
      runDir,
      netns: ns!.path,
      binary: {
        path: fixture('rootless/pasta-garbage'),
        version: undefined,
        splicesLoopback: true,
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineStartError);
    expect((err as EngineStartError).reason).toBe('exited');
    expect((err as EngineStartError).exitCode).toBe(3);
    expect((err as EngineStartError).log).toContain('this is not pasta');
  });

  it('a hanging binary: timeout within the deadline, its whole process group killed', async () => {
    const t0 = Date.now();
    const err = await Pasta.start({
      runDir,
      netns: ns!.path,
      binary: fixture('rootless/pasta-hang'),
      timeoutMs: 500,
    }).catch((e: unknown) => e);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(err).toBeInstanceOf(EngineStartError);
    const e = err as EngineStartError;
    expect(e.reason).toBe('timeout');
    expect(e.signal).toBe('SIGKILL');
    expect(e.log).toContain('pretending to start');
    expect(processGroup(e.pid!)).toEqual([]);
  });

  it('an abort while starting kills it and rejects with AbortError', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const err = await Pasta.start({
      runDir,
      netns: ns!.path,
      binary: fixture('rootless/pasta-hang'),
      signal: ac.signal,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AbortError);
  });

  it('bad options or ports: InvalidArgumentError before anything starts', async () => {
    for (const options of [['--netns', '/tmp/x'], ['-t', '80;reboot'], ['--bogus'], ['1234']]) {
      await expect(Pasta.start({ runDir, netns: ns!.path, options })).rejects.toBeInstanceOf(
        InvalidArgumentError,
      );
    }
    await expect(
      Pasta.start({ runDir, netns: ns!.path, ports: [{ hostPort: 0, containerPort: 80 }] }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(Pasta.start({ runDir })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(readdirSync(runDir)).toEqual([]);
  });
});
