// The native relay under churn: a listener with a pool, a flood of loopback
// clients, the group closed while clients are still arriving (so the close
// command and the listener's events land in one epoll batch), and
// child_process.spawn in a loop all along (each fork holds every relay fd
// for a moment, which is what keeps an epoll registration alive when an fd
// is closed without EPOLL_CTL_DEL). Run under the sanitizer build too
// (test/unit/sanitizers.test.ts), where a use after free is fatal; here the
// counters and the fd table must come back to where they were.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../../src/native.js';
import { encodeSockaddr } from '../../../src/netns/sockaddr.js';

const AF_INET = 2;
const SOCK_STREAM = 1;
const ROUNDS = 12;
const CLIENTS = 80;

const openFds = (): number => readdirSync('/proc/self/fd').length;

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

/** One client: connects, sends a line, waits for its echo or the end, whichever comes. */
function client(port: number): Promise<'echoed' | 'ended'> {
  return new Promise((resolve) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let got = '';
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got === 'ping\n') {
        c.destroy();
        resolve('echoed');
      }
    });
    c.on('error', () => undefined);
    c.on('close', () => resolve(got === 'ping\n' ? 'echoed' : 'ended'));
    c.write('ping\n');
  });
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
    // relay thread's epoll fd and eventfd, libuv's SIGCHLD pipe.
    native.relayCloseGroup(native.relayGroup());
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
        const clients = Array.from({ length: CLIENTS }, () => client(port));
        // Half the rounds close at once, half after some clients were relayed.
        if (round % 2 === 1) await Promise.race(clients);
        const final = native.relayCloseGroup(group)!;
        expect(final.active).toBe(0);
        const outcomes = await Promise.all(clients);
        echoed += outcomes.filter((o) => o === 'echoed').length;
        expect(native.relayStats(group)).toBeUndefined();
      }
    } finally {
      const spawned = await spawner.stop();
      expect(spawned).toBeGreaterThan(0);
    }
    // Some clients made it through before their group closed.
    expect(echoed).toBeGreaterThan(0);
    expect(native.relayStats()!.active).toBe(0);
    // Every socket, pipe and listener of every group is closed (the
    // upstream server's side of the last connections may take a moment).
    await expect.poll(openFds, { timeout: 2000 }).toBe(fdsBefore);
  });
});
