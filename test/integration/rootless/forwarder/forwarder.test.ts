// The port forwarder as root: host 127.0.0.1 -> a server inside a namespace,
// through the native splice relay. All traffic stays on the host's loopback
// and inside the namespace the test makes.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NetworkNamespace } from '../../../../src/index.js';
import { native } from '../../../../src/native.js';
import { PortForwarder, PortInUseError } from '../../../../src/rootless/index.js';
import { createTopology, type Topology } from '../../../../src/testing/index.js';
import { freePort, isRoot, type NetnsDir, tempNetnsDir } from '../../../helpers/host.js';
import { openFds, until } from '../../../helpers/process.js';

/** Connects to 127.0.0.1:PORT, sends DATA, half-closes, and resolves to all it got back. */
function exchange(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => resolve(Buffer.concat(chunks)));
    c.on('error', reject);
    c.end(data);
  });
}

/** Whether something accepts connections on 127.0.0.1:PORT. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    c.on('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

describe.skipIf(!isRoot)('PortForwarder (root)', () => {
  let tmp: NetnsDir;
  let ns: NetworkNamespace;
  let server: net.Server;
  let port: number; // the server's port inside the namespace
  let topo: Topology | undefined;
  const prefix = `10.234.${Math.floor(Math.random() * 250) + 1}`;
  const addr = `${prefix}.1`; // the one host's address in a topology over PREFIX
  const peers: string[] = [];

  beforeAll(async () => {
    tmp = tempNetnsDir();
    // A non-loopback address for the "container", attached to nothing on the host.
    topo = await createTopology({ hosts: 1, dir: tmp.dir, subnet: `${prefix}.0/24` });
    ns = topo.hosts[0]!.ns;
    // Echoes everything, and after the client's EOF still answers "BYE":
    // the half-close has to reach it, and the way back has to stay open.
    server = net.createServer((s) => {
      peers.push(s.remoteAddress ?? '');
      s.on('error', () => undefined);
      s.pipe(s, { end: false });
      s.on('end', () => s.end('BYE'));
    });
    ({ port } = await ns.listen(server, { host: addr, port: 0 }));
  });

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await topo?.remove();
    await tmp?.cleanup();
  });

  const start = (hostPort = 0): Promise<PortForwarder> =>
    PortForwarder.start({
      netns: ns,
      containerAddress: addr,
      mappings: [{ hostIP: '127.0.0.1', hostPort, containerPort: port }],
    });

  it('relays 8 MiB both ways intact, with half-close, and the server sees a non-loopback peer', async () => {
    await using fwd = await start();
    const [mapped] = fwd.ports;
    expect(mapped).toMatchObject({ hostIP: '127.0.0.1', containerPort: port, protocol: 'tcp' });
    expect(mapped!.hostPort).toBeGreaterThan(0);
    const data = randomBytes(8 * 1024 * 1024);
    const back = await exchange(mapped!.hostPort, data);
    expect(back.length).toBe(data.length + 3);
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    expect(digest(back.subarray(0, data.length))).toBe(digest(data));
    expect(back.subarray(data.length).toString()).toBe('BYE');
    // Opened inside the namespace and dialling the container's own address,
    // the forwarder's socket gets that address as its source.
    expect(peers.at(-1)).toBe(addr);
    expect(peers).not.toContain('127.0.0.1');
    const stats = fwd.stats();
    expect(stats).toMatchObject({ connections: 1, failed: 0, dropped: 0 });
    expect(stats.bytes).toBe(2 * data.length + 3);
  });

  it('handles 200 short connections, 16 at a time', async () => {
    await using fwd = await start();
    const hostPort = fwd.ports[0]!.hostPort;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 200) {
        const i = next++;
        const back = await exchange(hostPort, Buffer.from(`ping ${i}`));
        expect(back.toString()).toBe(`ping ${i}BYE`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(fwd.stats()).toMatchObject({ connections: 200, failed: 0, dropped: 0 });
    expect(peers.filter((p) => p === '127.0.0.1')).toEqual([]);
  });

  it('spreads bulk streams evenly over the relay threads, and counts them all', async () => {
    await using fwd = await start();
    const hostPort = fwd.ports[0]!.hostPort;
    const n = 4;
    const data = randomBytes(4 * 1024 * 1024);
    // Each sends its bulk and keeps its end open: all are bulk streams at once.
    const streams = Array.from({ length: n }, () => {
      const c = net.connect({ host: '127.0.0.1', port: hostPort });
      const chunks: Buffer[] = [];
      const back = new Promise<Buffer>((resolve, reject) => {
        c.on('data', (d: Buffer) => chunks.push(d));
        c.on('end', () => resolve(Buffer.concat(chunks)));
        c.on('error', reject);
      });
      c.write(data);
      return { c, back };
    });
    const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
    await until('every stream relayed as bulk', () => sum(native.relayThreads()) === n, 10_000);
    // One thread per core here (one on a single core): none has two more than another.
    const loads = native.relayThreads();
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1);
    for (const { c } of streams) c.end();
    for (const back of await Promise.all(streams.map((s) => s.back))) {
      expect(back.equals(Buffer.concat([data, Buffer.from('BYE')]))).toBe(true);
    }
    await until('every stream closed', () => fwd.stats().active === 0);
    expect(fwd.stats()).toMatchObject({ connections: n, failed: 0, dropped: 0 });
    expect(fwd.stats().bytes).toBe(n * (2 * data.length + 3));
    expect(native.relayThreads()).toEqual(loads.map(() => 0));
  });

  it('serves 500 short connections, 50 at a time, from its pool, and close() leaks no fd', async () => {
    // The relay threads' epoll fds and eventfds live as long as the process.
    await (await start()).close();
    const before = openFds();
    const fwd = await start();
    const hostPort = fwd.ports[0]!.hostPort;
    const first = peers.length;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 500) {
        const i = next++;
        expect((await exchange(hostPort, Buffer.from(`#${i}`))).toString()).toBe(`#${i}BYE`);
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    expect(fwd.stats()).toMatchObject({ connections: 500, failed: 0, dropped: 0, active: 0 });
    // 500 connections through a pool refilled in batches, each dialling the
    // container's own address from inside.
    expect(new Set(peers.slice(first))).toEqual(new Set([addr]));
    await fwd.close();
    expect(openFds()).toBe(before);
  });

  it('a port in use is a PortInUseError naming it, and nothing stays listening', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const busyPort = (busy.address() as net.AddressInfo).port;
    const first = await freePort();
    try {
      const err = await PortForwarder.start({
        netns: ns,
        containerAddress: addr,
        mappings: [
          { hostIP: '127.0.0.1', hostPort: first, containerPort: port },
          { hostIP: '127.0.0.1', hostPort: busyPort, containerPort: port },
        ],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect(err).toMatchObject({
        code: 'ERR_PODNET_PORT_IN_USE',
        hostIP: '127.0.0.1',
        hostPort: busyPort,
      });
      expect((err as Error).message).toContain(`127.0.0.1:${busyPort}`);
      expect(await accepts(first)).toBe(false);
    } finally {
      await new Promise((r) => busy.close(r));
    }
  });

  it('close() stops listening, resets open connections and leaks no fd', async () => {
    // The relay threads' epoll fds and eventfds live as long as the process:
    // the earlier tests made them, so the count below is stable.
    await (await start()).close();
    const before = openFds();
    const fwd = await start();
    const hostPort = fwd.ports[0]!.hostPort;
    for (let i = 0; i < 20; i++) await exchange(hostPort, Buffer.from('x'));
    // One connection still open when the forwarder closes.
    const open = net.connect({ host: '127.0.0.1', port: hostPort });
    const ended = new Promise<string>((resolve) => {
      open.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      open.on('close', () => resolve('close'));
    });
    await new Promise((r) => open.once('data', r).write('hold'));
    expect(fwd.stats().active).toBe(1);
    await fwd.close();
    expect(fwd.stats()).toMatchObject({ active: 0, connections: 21 });
    expect(await ended).toBe('ECONNRESET');
    expect(await accepts(hostPort)).toBe(false);
    expect(openFds()).toBe(before);
  });

  it('a container port nobody listens on resets the client', async () => {
    await using fwd = await PortForwarder.start({
      netns: ns,
      containerAddress: addr,
      mappings: [
        { hostIP: '127.0.0.1', hostPort: 0, containerPort: port === 65535 ? 1 : port + 1 },
      ],
    });
    const err = await exchange(fwd.ports[0]!.hostPort, Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNRESET' });
    expect(fwd.stats()).toMatchObject({ connections: 1, failed: 1, active: 0 });
  });
});

// A UDP echo server in its own process inside the namespace (nsenter): it
// answers each datagram with "<sender address> <datagram>", so a test sees
// both its own payload and whom the server saw.
const UDP_ECHO = `
  const s = require('node:dgram').createSocket('udp4');
  s.on('message', (m, r) => s.send(Buffer.concat([Buffer.from(r.address + ' '), m]), r.port, r.address));
  s.bind(0, process.argv[1], () => console.log('ready ' + s.address().port));`;

/** A client socket on 127.0.0.1 that collects what comes back. */
async function udpClient(): Promise<{ socket: dgram.Socket; got: string[] }> {
  const socket = dgram.createSocket('udp4');
  const got: string[] = [];
  socket.on('message', (m) => got.push(m.toString()));
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { socket, got };
}

describe.skipIf(!isRoot)('PortForwarder UDP (root)', () => {
  let tmp: NetnsDir;
  let ns: NetworkNamespace;
  let echo: ChildProcess;
  let port: number; // the echo server's port inside the namespace
  let topo: Topology | undefined;
  const prefix = `10.233.${Math.floor(Math.random() * 250) + 1}`;
  const addr = `${prefix}.1`; // the one host's address in a topology over PREFIX

  beforeAll(async () => {
    tmp = tempNetnsDir();
    topo = await createTopology({ hosts: 1, dir: tmp.dir, subnet: `${prefix}.0/24` });
    ns = topo.hosts[0]!.ns;
    echo = spawn('nsenter', [`--net=${ns.path}`, process.execPath, '-e', UDP_ECHO, addr], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      echo.stdout!.on('data', (d) => {
        out += d;
        const m = /ready (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      echo.on('exit', (code) => reject(new Error(`UDP echo server exited (${code})`)));
    });
  });

  afterAll(async () => {
    if (echo && echo.exitCode === null) {
      const exited = new Promise((r) => echo.once('exit', r));
      echo.kill('SIGKILL');
      await exited;
    }
    await topo?.remove();
    await tmp?.cleanup();
  });

  const start = (udpIdleTimeoutMs?: number): Promise<PortForwarder> =>
    PortForwarder.start({
      netns: ns,
      containerAddress: addr,
      mappings: [{ hostIP: '127.0.0.1', hostPort: 0, containerPort: port, protocol: 'udp' }],
      ...(udpIdleTimeoutMs === undefined ? {} : { udpIdleTimeoutMs }),
    });

  it('relays datagrams both ways, each client getting its own replies from a non-loopback peer', async () => {
    await using fwd = await start();
    const [mapped] = fwd.ports;
    expect(mapped).toMatchObject({ hostIP: '127.0.0.1', containerPort: port, protocol: 'udp' });
    const clients = await Promise.all(Array.from({ length: 5 }, udpClient));
    try {
      for (let round = 0; round < 3; round++) {
        for (const [i, c] of clients.entries())
          c.socket.send(`client ${i} round ${round}`, mapped!.hostPort, '127.0.0.1');
      }
      await until('the replies', () => clients.every((c) => c.got.length === 3));
      for (const [i, c] of clients.entries()) {
        expect(c.got.sort()).toEqual([0, 1, 2].map((r) => `${addr} client ${i} round ${r}`));
      }
      expect(fwd.stats()).toMatchObject({
        flows: 5,
        activeFlows: 5,
        datagrams: 30,
        datagramsDropped: 0,
        connections: 0,
      });
      const payload = clients.reduce((n, c) => n + c.got.join('').length, 0);
      expect(fwd.stats().bytes).toBe(payload * 2 - 15 * (addr.length + 1));
    } finally {
      for (const c of clients) c.socket.close();
    }
  });

  it('closes an idle flow after udpIdleTimeoutMs; the next datagram starts a new one; no fd leaks', async () => {
    await (await start()).close(); // the relay threads' own fds exist from here on
    const before = openFds();
    const fwd = await start(200);
    const hostPort = fwd.ports[0]!.hostPort;
    const c = await udpClient();
    try {
      c.socket.send('one', hostPort, '127.0.0.1');
      await until('the first reply', () => c.got.length === 1);
      expect(fwd.stats()).toMatchObject({ flows: 1, activeFlows: 1 });
      await until('the flow to expire', () => fwd.stats().activeFlows === 0, 2000);
      c.socket.send('two', hostPort, '127.0.0.1');
      await until('the second reply', () => c.got.length === 2);
      expect(c.got).toEqual([`${addr} one`, `${addr} two`]);
      expect(fwd.stats()).toMatchObject({ flows: 2, activeFlows: 1, datagrams: 4 });
    } finally {
      c.socket.close();
    }
    await fwd.close();
    expect(fwd.stats().activeFlows).toBe(0);
    expect(openFds()).toBe(before);
  });

  it('a UDP port in use is a PortInUseError, and nothing stays bound', async () => {
    const busy = dgram.createSocket('udp4');
    await new Promise<void>((r) => busy.bind(0, '127.0.0.1', r));
    const busyPort = busy.address().port;
    const first = await freePort();
    try {
      const err = await PortForwarder.start({
        netns: ns,
        containerAddress: addr,
        mappings: [
          { hostIP: '127.0.0.1', hostPort: first, containerPort: port, protocol: 'udp' },
          { hostIP: '127.0.0.1', hostPort: busyPort, containerPort: port, protocol: 'udp' },
        ],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PortInUseError);
      expect(err).toMatchObject({ hostIP: '127.0.0.1', hostPort: busyPort });
      // The first port was released: binding it again works.
      const again = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.bind(first, '127.0.0.1', resolve);
      });
      again.close();
    } finally {
      busy.close();
    }
  });

  it('rejects a bad udpIdleTimeoutMs', async () => {
    for (const bad of [0, -1, 1.5, 2 ** 31]) {
      await expect(start(bad)).rejects.toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
    }
  });
});
