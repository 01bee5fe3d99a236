// The native relay under churn: a listener with a pool, a flood of loopback
// clients from a worker thread, the group closed while clients are still
// arriving (so the close command and the listener's events land in one
// epoll batch), and
// child_process.spawn in a loop all along (each fork holds every relay fd
// for a moment, which is what keeps an epoll registration alive when an fd
// is closed without EPOLL_CTL_DEL). Run under the sanitizer build too
// (test/unit/native/sanitizers.test.ts), where a use after free is fatal; here the
// counters and the fd table must come back to where they were. With more
// relay threads than this machine may have cores, and bulk connections
// among the short ones, so pairs move between threads while their group
// closes.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../../src/native.js';
import { encodeSockaddr } from '../../../src/netns/sockaddr.js';
import { openFds } from '../../helpers/process.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const ROUNDS = 20;
const THREADS = 3;
// Read when the first group starts the relay (this file has a process of its own).
process.env.PODNET_RELAY_THREADS = String(THREADS);

/** Spawns /bin/true over and over until stopped; resolves to how many ran. */
function spawnLoop(): { stop: () => Promise<number> } {
  let running = true;
  let count = 0;
  const loop = (async () => {
    while (running) {
      await new Promise<void>((resolve) => {
        // No environment: the children need none (and not the sanitizer's preload).
        const c = spawn('/bin/true', [], { stdio: 'ignore', env: {} });
        c.on('error', () => resolve());
        c.on('exit', () => resolve());
      });
      count++;
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return count;
    },
  };
}

// Connects to PORT over and over, CONCURRENCY at a time, each connection
// sending a line (every fourth one 512 KiB, so its pipe grows and it may
// move to another relay thread) and closing at its echo (or at a reset),
// until told to stop; then reports how many were echoed. A thread of its own, so that
// clients keep arriving while the JS thread is blocked in relayCloseGroup.
const FLOOD = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
let stopping = false;
let live = 0;
let echoed = 0;
let made = 0;
const bulk = Buffer.alloc(512 * 1024, 1);
function one() {
  live++;
  const c = net.connect({ host: '127.0.0.1', port: workerData.port });
  c.on('error', () => undefined);
  c.on('data', () => { if (echoed++ === 0) parentPort.postMessage('first'); c.destroy(); });
  c.on('close', () => {
    live--;
    if (!stopping) setImmediate(one);
    else if (live === 0) parentPort.postMessage({ echoed });
  });
  c.write(made++ % 4 === 0 ? bulk : 'ping\\n');
}
parentPort.on('message', () => { stopping = true; if (live === 0) parentPort.postMessage({ echoed }); });
for (let i = 0; i < workerData.concurrency; i++) one();
`;

function flood(port: number): { first: Promise<void>; stop: () => Promise<number> } {
  const w = new Worker(FLOOD, { eval: true, workerData: { port, concurrency: 24 } });
  let first!: () => void;
  const firstEcho = new Promise<void>((r) => {
    first = r;
  });
  const done = new Promise<number>((resolve, reject) => {
    w.on('message', (m: 'first' | { echoed: number }) => {
      if (m === 'first') first();
      else resolve(m.echoed);
    });
    w.once('error', reject);
  });
  return {
    first: firstEcho,
    stop: async () => {
      w.postMessage('stop');
      const echoed = await done;
      await w.terminate();
      return echoed;
    },
  };
}

describe('native relay under churn', () => {
  let upstream: net.Server;
  let upstreamAddr: Buffer;

  beforeAll(async () => {
    upstream = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upstreamAddr = encodeSockaddr('127.0.0.1', (upstream.address() as net.AddressInfo).port).addr;
  });

  afterAll(async () => {
    await new Promise((r) => upstream.close(r));
  });

  it('opens, floods and closes listener groups while the process forks', async () => {
    // Warm-up, so the baseline holds the fds made once per process: the
    // relay threads' epoll fds and eventfds, libuv's SIGCHLD pipe.
    native.relayCloseGroup(native.relayGroup());
    expect(native.relayThreads()).toHaveLength(THREADS);
    await spawnLoop().stop();
    const fdsBefore = openFds();
    const spawner = spawnLoop();
    let echoed = 0;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const group: number = native.relayGroup((kind) => {
          native.relayPoolAdd(group, kind, native.socketsHere(AF_INET, SOCK_STREAM, 0, 16));
        });
        native.relayPoolLow(group, native.POOL_TCP, 8);
        native.relayPoolAdd(
          group,
          native.POOL_TCP,
          native.socketsHere(AF_INET, SOCK_STREAM, 0, 16),
        );
        const [lfd, port] = native.hostSocket(encodeSockaddr('127.0.0.1', 0).addr, SOCK_STREAM);
        native.relayListen(group, lfd, upstreamAddr);
        const clients = flood(port);
        // Close while clients keep arriving: once they are being relayed,
        // sooner or later.
        await clients.first;
        await new Promise((r) => setTimeout(r, (round % 4) * 5));
        const final = native.relayCloseGroup(group)!;
        expect(final.active).toBe(0);
        // The listener's own counters agree with its group's.
        expect(final.ports).toHaveLength(1);
        expect(final.ports![0]!.active).toBe(0);
        expect(final.ports![0]!.connections).toBe(final.pairs);
        expect(final.ports![0]!.rxBytes + final.ports![0]!.txBytes).toBe(final.bytes);
        echoed += await clients.stop();
        expect(native.relayStats(group)).toBeUndefined();
      }
    } finally {
      const spawned = await spawner.stop();
      expect(spawned).toBeGreaterThan(0);
    }
    // Some clients made it through before their group closed.
    expect(echoed).toBeGreaterThan(0);
    expect(native.relayStats()!.active).toBe(0);
    expect(native.relayThreads()).toEqual(Array(THREADS).fill(0));
    // Every socket, pipe and listener of every group is closed (the
    // upstream server's side of the last connections may take a moment).
    await expect.poll(openFds, { timeout: 2000 }).toBe(fdsBefore);
  }, 30_000);
});
