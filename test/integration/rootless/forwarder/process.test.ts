// The forwarder in a detached process of its own (PortForwarder.spawnDetached
// and forwarder-main.ts): it serves after the process that started it is
// gone, stops on SIGTERM and on EOF of its exit fd, and reports a typed
// error on fd 3. The process runs from dist/ (`npm run build` first, as
// `npm test` does), so these tests import the built package.
import { spawn } from 'node:child_process';
import { closeSync, constants, openSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { NetworkNamespace } from '../../../../src/index.js';
import { createTopology, type Topology } from '../../../../src/testing/index.js';
import { freePort, isRoot, type NetnsDir, tempNetnsDir } from '../../../helpers/host.js';
import { run, running, until } from '../../../helpers/process.js';

const dist = new URL('../../../../dist/', import.meta.url);
const main = fileURLToPath(new URL('rootless/forwarder/forwarder-main.js', dist));
// The built package, whose PortForwarder finds forwarder-main.js beside it
// (imported by URL, so type checking does not need dist/).
const { ForwarderProcessError, PortForwarder } = (await import(
  new URL('rootless/index.js', dist).href
)) as typeof import('../../../../src/rootless/index.js');

/** Pids of forwarder processes of this checkout. */
function forwarderPids(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(main)) out.push(Number(pid));
    } catch {
      // Ended meanwhile.
    }
  }
  return out;
}

/** Sends "ping", half-closes, resolves to the answer (the server echoes and adds "!"). */
function ping(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks).toString()));
    c.on('error', reject);
    c.end('ping');
  });
}

describe.skipIf(!isRoot)('PortForwarder.spawnDetached (root)', () => {
  let tmp: NetnsDir;
  let ns: NetworkNamespace;
  let server: net.Server;
  let port: number;
  let topo: Topology | undefined;
  const prefix = `10.232.${Math.floor(Math.random() * 250) + 1}`;
  const addr = `${prefix}.1`; // the one host's address in a topology over PREFIX

  beforeAll(async () => {
    tmp = tempNetnsDir();
    topo = await createTopology({ hosts: 1, dir: tmp.dir, subnet: `${prefix}.0/24` });
    ns = topo.hosts[0]!.ns;
    server = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s, { end: false });
      s.on('end', () => s.end('!'));
    });
    ({ port } = await ns.listen(server, { host: addr, port: 0 }));
  });

  afterEach(async () => {
    // Whatever a failed test left running.
    for (const pid of forwarderPids()) process.kill(pid, 'SIGKILL');
    await until('the forwarders to end', () => forwarderPids().every((p) => !running(p)));
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await topo?.remove();
    await tmp?.cleanup();
  });

  const mappings = () => [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: port }];

  // Starts a detached forwarder from another Node process, which prints
  // what it got and exits (exitFd as given).
  async function startFromChild(
    exitFd?: 'pipe',
  ): Promise<{ pid: number; startTime: string; hostPort: number }> {
    const script = `
      const { PortForwarder } = await import(${JSON.stringify(new URL('rootless/index.js', dist).href)});
      const f = await PortForwarder.spawnDetached(JSON.parse(process.argv[1]));
      console.log(JSON.stringify({ ...f.identity, hostPort: f.ports[0].hostPort }));
      process.exit(0);`;
    const opts = {
      netns: ns.path,
      containerAddress: addr,
      mappings: mappings(),
      ...(exitFd ? { exitFd } : {}),
    };
    const out = await run([
      process.execPath,
      '--input-type=module',
      '-e',
      script,
      JSON.stringify(opts),
    ]);
    return JSON.parse(out);
  }

  it('serves after the process that started it has exited, in a group of its own; SIGTERM stops it', async () => {
    const fwd = await startFromChild();
    expect(running(fwd.pid)).toBe(true);
    const stat = readFileSync(`/proc/${fwd.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[2])).toBe(fwd.pid); // its own process group
    expect(fields[19]).toBe(fwd.startTime);
    expect(await ping(fwd.hostPort)).toBe('ping!');
    process.kill(fwd.pid, 'SIGTERM');
    await until('the forwarder to exit', () => !running(fwd.pid));
    await expect(ping(fwd.hostPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it("reaches a UserNamespace's network namespace through the helper's pid", async () => {
    const { UserNamespace } = (await import(
      new URL('index.js', dist).href
    )) as typeof import('../../../../src/index.js');
    const userns = await UserNamespace.create();
    try {
      // A bridge with an address: the namespace's own, which the forwarder dials.
      const own = `10.233.${Math.floor(Math.random() * 250) + 1}.2`;
      await userns.netns.addLink('br0', 'bridge');
      await userns.netns.addAddress('br0', `${own}/24`);
      for (const link of ['lo', 'br0']) await userns.netns.setLinkUp(link);
      const inside = net.createServer((sock) => {
        // The forwarder may reset the inner connection once the client is done.
        sock.on('error', () => undefined);
        sock.end(`peer ${sock.remoteAddress}`);
      });
      const { port: innerPort } = await userns.netns.listen(inside, { host: own });
      const fwd = await PortForwarder.spawnDetached({
        usernsPid: userns.pid,
        containerAddress: own,
        mappings: [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: innerPort }],
        exitFd: 'pipe',
      });
      try {
        const reply = await new Promise<string>((resolve, reject) => {
          const c = net.connect({ host: '127.0.0.1', port: fwd.ports[0]!.hostPort });
          let text = '';
          c.on('data', (d: Buffer) => {
            text += d;
          });
          c.on('end', () => resolve(text));
          c.on('error', reject);
        });
        expect(reply).toBe(`peer ${own}`);
        // Its counters, asked of the process over its stats endpoint: the
        // connection crossed the namespace's lo, which only they count.
        const stats = await fwd.stats();
        expect(stats?.connections).toBe(1);
        expect(stats?.ports).toEqual([
          {
            ...fwd.ports[0],
            connections: 1,
            active: expect.any(Number),
            rxBytes: 0,
            txBytes: reply.length,
            rxDatagrams: 0,
            txDatagrams: 0,
          },
        ]);
      } finally {
        await fwd.stop();
        inside.close();
      }
      expect(await fwd.stats()).toBeUndefined();
    } finally {
      await userns.close();
    }
  });

  it("with exitFd 'pipe' it ends with the process that started it", async () => {
    const fwd = await startFromChild('pipe');
    await until('the forwarder to exit', () => !running(fwd.pid));
    await expect(ping(fwd.hostPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('with an exit fd of ours, it ends when the fd reads EOF; stop() works on a handle', async () => {
    const fifo = join(tmp.dir, 'exit.fifo');
    await run(['mkfifo', fifo]);
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeEnd = openSync(fifo, constants.O_WRONLY);
    const fwd = await PortForwarder.spawnDetached({
      netns: ns.path,
      containerAddress: addr,
      mappings: mappings(),
      exitFd: readEnd,
    });
    closeSync(readEnd); // the forwarder has its own copy
    expect(fwd.running).toBe(true);
    expect(await ping(fwd.ports[0]!.hostPort)).toBe('ping!');
    // Counted per port, in the container's view: "ping" in, "ping!" back.
    expect((await fwd.stats())?.ports[0]).toMatchObject({ rxBytes: 4, txBytes: 5 });
    closeSync(writeEnd);
    await until('the forwarder to exit', () => !fwd.running);

    const again = await PortForwarder.spawnDetached({
      netns: ns.path,
      containerAddress: addr,
      mappings: mappings(),
    });
    expect(await ping(again.ports[0]!.hostPort)).toBe('ping!');
    await again.stop();
    expect(again.running).toBe(false);
  });

  it('a failure to start is a typed error, and no forwarder process is left', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const busyPort = (busy.address() as net.AddressInfo).port;
    try {
      const inUse = await PortForwarder.spawnDetached({
        netns: ns.path,
        containerAddress: addr,
        mappings: [
          { hostIP: '127.0.0.1', hostPort: await freePort(), containerPort: port },
          { hostIP: '127.0.0.1', hostPort: busyPort, containerPort: port },
        ],
      }).catch((e: unknown) => e);
      expect(inUse).toBeInstanceOf(ForwarderProcessError);
      expect(inUse).toMatchObject({ code: 'ERR_PODNET_PORT_IN_USE' });
      expect((inUse as Error).message).toContain(`127.0.0.1:${busyPort}`);
    } finally {
      await new Promise((r) => busy.close(r));
    }
    const loopback = await PortForwarder.spawnDetached({
      netns: ns.path,
      containerAddress: '127.0.0.1',
      mappings: mappings(),
    }).catch((e: unknown) => e);
    expect(loopback).toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
    const noNs = await PortForwarder.spawnDetached({
      netns: join(tmp.dir, 'missing'),
      containerAddress: addr,
      mappings: mappings(),
    }).catch((e: unknown) => e);
    expect(noNs).toMatchObject({ code: 'ENOENT' });
    await until('no forwarder left', () => forwarderPids().length === 0);
  });

  it('bad JSON on stdin is a typed error on fd 3, and the process exits 1', async () => {
    const child = spawn(process.execPath, [main], { stdio: ['pipe', 'ignore', 'ignore', 'pipe'] });
    child.stdin!.end('{"netns": ');
    const chunks: Buffer[] = [];
    for await (const c of child.stdio[3] as NodeJS.ReadableStream) chunks.push(c as Buffer);
    const code = await new Promise((r) => child.on('exit', r));
    expect(JSON.parse(Buffer.concat(chunks).toString())).toMatchObject({
      ok: false,
      code: 'ERR_PODNET_INVALID_ARGUMENT',
      message: expect.stringContaining('not a line of JSON'),
    });
    expect(code).toBe(1);

    const shape = await PortForwarder.spawnDetached({
      netns: ns.path,
      containerAddress: addr,
      mappings: [{ hostPort: 'eighty' as never, containerPort: port }],
    }).catch((e: unknown) => e);
    expect(shape).toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
    expect((shape as Error).message).toContain('mappings.0.hostPort');
  });
});
