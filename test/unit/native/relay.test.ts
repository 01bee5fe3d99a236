// The native relay on its own, between loopback sockets (no root needed):
// byte integrity and half-close both ways, through splice and through the
// read/write fallback, bulk streams spread over the relay threads, each
// port's counters kept apart, and close of a group.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { fstatSync, openSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../../src/native.js';
import { encodeSockaddr } from '../../../src/netns/sockaddr.js';

// Read when this file's first group starts the relay (each test file runs in
// a process of its own): more threads than this machine may have cores, so
// pairs are handed between threads wherever the tests run.
const THREADS = 3;
process.env.PODNET_RELAY_THREADS = String(THREADS);

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Takes a socket's fd away from libuv (a duplicate; the JS socket is destroyed). */
function takeFd(socket: net.Socket): number {
  const fd = native.dupFd((socket as unknown as { _handle: { fd: number } })._handle.fd);
  socket.destroy();
  return fd;
}

describe('native relay', () => {
  let upstream: net.Server; // echoes, and answers "BYE" after the client's EOF
  let front: net.Server; // hands each connection to the relay with an upstream socket
  let group: number;
  let flags = 0;

  beforeAll(async () => {
    upstream = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s, { end: false });
      s.on('end', () => s.end('BYE'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const upPort = (upstream.address() as net.AddressInfo).port;
    group = native.relayGroup();
    front = net.createServer({ pauseOnConnect: true }, (client) => {
      const inner = net.connect({ host: '127.0.0.1', port: upPort }, () => {
        inner.pause(); // libuv must not read what belongs to the relay
        native.relayStart(group, takeFd(client), takeFd(inner), undefined, flags);
      });
    });
    await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    native.relayCloseGroup(group);
    await new Promise((r) => front.close(r));
    await new Promise((r) => upstream.close(r));
  });

  function exchange(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      const c = net.connect({ host: '127.0.0.1', port: (front.address() as net.AddressInfo).port });
      c.on('data', (d: Buffer) => chunks.push(d));
      c.on('end', () => resolve(Buffer.concat(chunks)));
      c.on('error', reject);
      c.end(data);
    });
  }

  it.each([
    ['splice', 0],
    ['read/write', native.RELAY_FORCE_COPY],
  ])('moves 4 MiB intact both ways with half-close (%s)', async (_mode, f) => {
    flags = f;
    const before = native.relayStats(group)!;
    const data = randomBytes(4 * 1024 * 1024);
    const back = await exchange(data);
    expect(back.length).toBe(data.length + 3);
    expect(digest(back.subarray(0, data.length))).toBe(digest(data));
    expect(back.subarray(data.length).toString()).toBe('BYE');
    const after = native.relayStats(group)!;
    expect(after.bytes - before.bytes).toBe(2 * data.length + 3);
    expect(after.pairs - before.pairs).toBe(1);
    expect(after.failed).toBe(before.failed);
  });

  it('spreads bulk streams evenly over the threads, and their counters add up', async () => {
    flags = 0;
    expect(native.relayThreads()).toEqual(Array(THREADS).fill(0));
    const before = native.relayStats(group)!;
    const port = (front.address() as net.AddressInfo).port;
    const n = 2 * THREADS;
    const data = randomBytes(4 * 1024 * 1024);
    // Every stream sends its bulk and keeps its end open, so all are live
    // bulk streams (their pipes grown) at once; each read echoes back.
    const streams = Array.from({ length: n }, () => {
      const c = net.connect({ host: '127.0.0.1', port });
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
    await expect.poll(() => sum(native.relayThreads()), { timeout: 10_000 }).toBe(n);
    // Each moved, when it turned bulk, to a thread with two fewer.
    expect(native.relayThreads()).toEqual(Array(THREADS).fill(2));
    for (const { c } of streams) c.end();
    const backs = await Promise.all(streams.map((s) => s.back));
    for (const back of backs) {
      expect(back.length).toBe(data.length + 3);
      expect(digest(back.subarray(0, data.length))).toBe(digest(data));
    }
    await expect.poll(() => native.relayStats(group)!.active).toBe(before.active);
    const after = native.relayStats(group)!;
    expect(after.pairs - before.pairs).toBe(n);
    expect(after.bytes - before.bytes).toBe(n * (2 * data.length + 3));
    expect(after.failed).toBe(before.failed);
    expect(native.relayThreads()).toEqual(Array(THREADS).fill(0));
  });

  it('an empty exchange ends cleanly', async () => {
    flags = 0;
    expect((await exchange(Buffer.alloc(0))).toString()).toBe('BYE');
  });

  it('refuses an unknown group and closes the fds it was given', () => {
    const a = openSync('/dev/null', 'r');
    const b = openSync('/dev/null', 'r');
    expect(() => native.relayStart(0, a, b)).toThrow(/relayStart/);
    expect(() => fstatSync(a)).toThrow(/EBADF/);
    expect(() => fstatSync(b)).toThrow(/EBADF/);
  });

  it('a closed group reports its final counters once, then nothing', () => {
    const g = native.relayGroup();
    const zero = {
      active: 0,
      pairs: 0,
      failed: 0,
      bytes: 0,
      dropped: 0,
      flows: 0,
      activeFlows: 0,
      datagrams: 0,
      datagramsDropped: 0,
      ports: [], // a group's: no port handed to it
    };
    expect(native.relayStats(g)).toEqual(zero);
    expect(native.relayCloseGroup(g)).toEqual(zero);
    expect(native.relayStats(g)).toBeUndefined();
    expect(native.relayCloseGroup(g)).toBeUndefined();
  });

  it("counts each listener's and UDP port's traffic apart, each way", async () => {
    const SOCK_STREAM = 1;
    const SOCK_DGRAM = 2;
    const AF_INET = 2;
    const upPort = (upstream.address() as net.AddressInfo).port;
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, from) => echo.send(Buffer.concat([m, m]), from.port, from.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    const g = native.relayGroup();
    try {
      native.relayPoolAdd(g, native.POOL_TCP, native.socketsHere(AF_INET, SOCK_STREAM, 0, 4));
      native.relayPoolAdd(g, native.POOL_UDP, native.socketsHere(AF_INET, SOCK_DGRAM, 0, 2));
      const listen = (): [number, number] => {
        const [fd, port] = native.hostSocket(encodeSockaddr('127.0.0.1', 0).addr, SOCK_STREAM);
        return [native.relayListen(g, fd, encodeSockaddr('127.0.0.1', upPort).addr), port];
      };
      const [ia, portA] = listen();
      const [ib, portB] = listen();
      const [udpFd, udpPort] = native.hostSocket(encodeSockaddr('127.0.0.1', 0).addr, SOCK_DGRAM);
      const echoPort = (echo.address() as net.AddressInfo).port;
      const iu = native.relayUdp(g, udpFd, encodeSockaddr('127.0.0.1', echoPort).addr, 10_000, 8);
      expect([ia, ib, iu]).toEqual([0, 1, 2]);
      const send = (port: number, data: Buffer): Promise<number> =>
        new Promise((resolve, reject) => {
          let got = 0;
          const c = net.connect({ host: '127.0.0.1', port });
          c.on('data', (d: Buffer) => {
            got += d.length;
          });
          c.on('end', () => resolve(got));
          c.on('error', reject);
          c.end(data);
        });
      // A: two connections of 1000 bytes; B: one of 5000. Each echoes, then "BYE".
      expect(await send(portA, randomBytes(1000))).toBe(1003);
      expect(await send(portA, randomBytes(1000))).toBe(1003);
      expect(await send(portB, randomBytes(5000))).toBe(5003);
      const client = dgram.createSocket('udp4');
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      const reply = new Promise<Buffer>((r) => client.once('message', r));
      client.send(Buffer.alloc(100, 7), udpPort, '127.0.0.1');
      expect((await reply).length).toBe(200);
      client.close();
      // The relay counts a direction once its bytes are written: the
      // client's EOF came after, so the counts are final.
      const ports = native.relayStats(g)!.ports!;
      expect(ports[ia]).toEqual({
        connections: 2,
        active: 0,
        rxBytes: 2000,
        txBytes: 2006,
        rxDatagrams: 0,
        txDatagrams: 0,
      });
      expect(ports[ib]).toEqual({
        connections: 1,
        active: 0,
        rxBytes: 5000,
        txBytes: 5003,
        rxDatagrams: 0,
        txDatagrams: 0,
      });
      expect(ports[iu]).toEqual({
        connections: 0,
        active: 0,
        rxBytes: 100,
        txBytes: 200,
        rxDatagrams: 1,
        txDatagrams: 1,
      });
      // The group's own counters are their sum.
      expect(native.relayStats(g)!.bytes).toBe(2000 + 2006 + 5000 + 5003 + 300);
      // Kept after close: the final counters have them too.
      expect(native.relayCloseGroup(g)!.ports).toEqual(ports);
    } finally {
      native.relayCloseGroup(g);
      echo.close();
    }
  });
});
