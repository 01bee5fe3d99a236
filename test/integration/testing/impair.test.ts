// TopologyLink.impair against the kernel: netem where the kernel has it,
// else the delay line (clsact + cls_bpf + a tap and a native thread, see
// src/testing/impair.ts); the same assertions hold for both. Delay, jitter,
// loss, rate, a change in place under traffic, the counters, and what bad
// input and a failure half way leave (nothing: tc's and ip's view of both
// ends compared). Traffic goes only between the topology's own namespaces.
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createTopology,
  type NamedTopology,
  type TopologyHost,
} from '../../../src/testing/index.js';
import { isRoot } from '../../helpers/host.js';
import { connectWithin, echoServer, rtt } from '../../helpers/tcp.js';
import { topologyDirsPerTest } from '../../helpers/topology-env.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

// A node process inside `host` that counts UDP datagrams on PORT and
// prints their sequence numbers once none came for `idleMs`.
const RECEIVER = `
const d = require('node:dgram').createSocket('udp4');
const seen = []; let timer;
const done = () => { console.log(JSON.stringify(seen)); d.close(); };
d.on('message', (m) => { seen.push(m.readUInt32LE(0)); clearTimeout(timer); timer = setTimeout(done, +process.argv[3]); });
d.bind(+process.argv[1], process.argv[2], () => { console.log('ready'); timer = setTimeout(done, +process.argv[4]); });
`;
// Sends COUNT datagrams, one every INTERVAL ms, to HOST:PORT.
const SENDER = `
const d = require('node:dgram').createSocket('udp4');
const [host, port, count, interval] = process.argv.slice(1);
let i = 0;
const next = () => {
  if (i === +count) return d.close();
  const b = Buffer.alloc(64); b.writeUInt32LE(i++);
  d.send(b, +port, host, () => setTimeout(next, +interval));
};
next();
`;

/**
 * COUNT datagrams from `from` to `to`, one every `intervalMs`. Resolves to
 * the sequence numbers that arrived, in order of arrival.
 */
async function udp(
  from: TopologyHost,
  to: TopologyHost,
  count: number,
  intervalMs: number,
): Promise<number[]> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const rx = to.spawn(
    process.execPath,
    ['-e', RECEIVER, String(port), to.address, '1500', '20000'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  rx.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve) =>
    rx.stdout!.on('data', (d: string) => {
      out += d;
      if (out.includes('ready\n')) resolve();
    }),
  );
  const closed = new Promise<void>((r) => rx.once('close', () => r()));
  const tx = await from.exec(process.execPath, [
    '-e',
    SENDER,
    to.address,
    String(port),
    String(count),
    String(intervalMs),
  ]);
  expect(tx.code).toBe(0);
  await closed;
  return JSON.parse(out.slice(out.indexOf('ready\n') + 6)) as number[];
}

/** What tc and ip show of a host's end: qdiscs, filters on both hooks, links. */
async function view(h: TopologyHost): Promise<string> {
  const run = async (cmd: string, args: string[]): Promise<string> => {
    const r = await h.exec(cmd, args);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout;
  };
  return [
    await run('tc', ['-j', 'qdisc', 'show']),
    await run('tc', ['-j', 'filter', 'show', 'dev', 'eth0', 'ingress']),
    await run('tc', ['-j', 'filter', 'show', 'dev', 'eth0', 'egress']),
    await run('ip', ['-j', 'link']),
  ].join('\n');
}

describe.skipIf(!isRoot)('TopologyLink.impair', () => {
  const dirs = topologyDirsPerTest();
  let topo: NamedTopology;
  let a: TopologyHost;
  let b: TopologyHost;
  beforeEach(async () => {
    topo = await createTopology({
      hosts: ['a', 'b'],
      links: [{ between: ['a', 'b'] }],
      dir: dirs.dir,
      recordDir: dirs.recordDir,
    });
    [a, b] = [topo.host('a'), topo.host('b')];
  });
  afterEach(async () => {
    await topo.remove();
  });

  it('a 50 ms delay gives a round trip of at least 100 ms; clear() takes it away', async () => {
    const link = topo.link('a', 'b');
    const server = await echoServer(b.ns, b.address);
    const sock = await connectWithin(a.ns, b.address, server.port);
    try {
      const before = await rtt(sock);
      await link.impair({ delay: 50 });
      const state = await link.impairment();
      const samples: number[] = [];
      for (let i = 0; i < 20; i++) samples.push(await rtt(sock));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(100);
      expect(Math.max(...samples)).toBeLessThan(250);
      await link.clear();
      expect(await link.impairment()).toBeUndefined();
      const after: number[] = [];
      for (let i = 0; i < 5; i++) after.push(await rtt(sock));
      expect(median(after)).toBeLessThan(10);
      // Nothing of the impairment is left: no filter, no tap, the default qdisc.
      for (const h of [a, b]) {
        const v = await view(h);
        expect(v).not.toMatch(/netem|clsact|"bpf"|pdl[0-9a-f]{8}/);
      }
      console.log(
        `impair (${state?.mechanism}): round trip ${before.toFixed(2)} ms, with 50 ms each way ` +
          `median ${median(samples).toFixed(2)} ms of 20 (min ${Math.min(...samples).toFixed(2)}, ` +
          `max ${Math.max(...samples).toFixed(2)}), cleared ${median(after).toFixed(2)} ms`,
      );
    } finally {
      sock.destroy();
      await server.close();
    }
  });

  it('jitter varies the round trip within delay +/- jitter at both ends', async () => {
    const server = await echoServer(b.ns, b.address);
    const sock = await connectWithin(a.ns, b.address, server.port);
    try {
      await topo.link('a', 'b').impair({ delay: 30, jitter: 10 });
      const samples: number[] = [];
      for (let i = 0; i < 30; i++) samples.push(await rtt(sock));
      // Each direction adds 20 to 40 ms; the upper bound has room for this process.
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(40);
      expect(Math.max(...samples)).toBeLessThan(80 + 30);
      expect(Math.max(...samples) - Math.min(...samples)).toBeGreaterThan(5);
    } finally {
      sock.destroy();
      await server.close();
    }
  });

  it('loss 100 passes nothing, loss 0 passes again; loss 30 drops about 30% one way', async () => {
    const link = topo.link('a', 'b');
    const server = await echoServer(b.ns, b.address);
    try {
      await link.impair({ loss: 100 });
      await expect(connectWithin(a.ns, b.address, server.port, 1500)).rejects.toThrow(/timed out/);
      await link.impair({ loss: 0 });
      (await connectWithin(a.ns, b.address, server.port)).destroy();
      await link.impair({ loss: 30 });
      const before = (await link.impairment())!.directions[0];
      const got = await udp(a, b, 400, 2);
      const share = got.length / 400;
      expect(share).toBeGreaterThan(0.55);
      expect(share).toBeLessThan(0.85);
      const after = (await link.impairment())!.directions[0];
      expect(after.frames - before.frames).toBeGreaterThanOrEqual(400);
      expect(after.dropped - before.dropped).toBeGreaterThan(400 * 0.15);
      console.log(`impair: loss 30%, ${got.length} of 400 datagrams arrived`);
    } finally {
      await server.close();
    }
  });

  it('rate 8 Mbit/s: 2 MB over TCP take at least 1.8 s', async () => {
    await topo.link('a', 'b').impair({ rate: 8_000_000 });
    const srv = net.createServer();
    let received = 0;
    const done = new Promise<void>((resolve) =>
      srv.on('connection', (s) =>
        s.on('data', (d: Buffer) => {
          received += d.length;
          if (received >= 2_000_000) resolve();
        }),
      ),
    );
    const { port } = await b.ns.listen(srv, { host: b.address });
    const sock = await connectWithin(a.ns, b.address, port);
    try {
      const t0 = Date.now();
      sock.write(Buffer.alloc(2_000_000));
      await done;
      const took = (Date.now() - t0) / 1000;
      expect(took).toBeGreaterThanOrEqual(1.8);
      expect(took).toBeLessThan(10);
      console.log(`impair: 2 MB at 8 Mbit/s in ${took.toFixed(2)} s`);
    } finally {
      sock.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('changes in place: datagrams every 10 ms lose nothing and keep their order while the delay changes', async () => {
    const link = topo.link('a', 'b');
    await link.impair({ delay: 40 });
    const changing = udp(a, b, 200, 10);
    for (const delay of [10, 60, 5, 40, 20]) {
      await new Promise((r) => setTimeout(r, 150));
      await link.impair({ delay });
    }
    const seen = await changing;
    expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect((await link.impairment())!.impairment).toEqual({ delay: 20 });
  });

  it('counts the packets of each direction', async () => {
    const link = topo.link('a', 'b');
    await link.impair({ delay: 1 });
    const server = await echoServer(b.ns, b.address);
    const sock = await connectWithin(a.ns, b.address, server.port);
    try {
      for (let i = 0; i < 10; i++) await rtt(sock);
    } finally {
      sock.destroy();
      await server.close();
    }
    const state = (await link.impairment())!;
    expect(state.impairment).toEqual({ delay: 1 });
    expect(state.directions.map((d) => [d.from, d.to])).toEqual([
      ['a', 'b'],
      ['b', 'a'],
    ]);
    for (const d of state.directions) {
      // A handshake, ten bytes each way and their acks at the least.
      expect(d.frames).toBeGreaterThanOrEqual(10);
      expect(d.delivered).toBeGreaterThanOrEqual(10);
      expect(d.dropped).toBe(0);
      expect(d.frames).toBe(d.delivered + d.dropped + d.queued);
    }
  });

  it('bad input changes nothing, on a link unimpaired or impaired', async () => {
    const link = topo.link('a', 'b');
    const before = [await view(a), await view(b)];
    for (const bad of [
      { delay: -1 },
      { loss: 101 },
      { jitter: Number.NaN },
      { rate: '1mbit' },
      null,
    ] as never[]) {
      const err = await link.impair(bad).catch((e: unknown) => e as Error & { code?: string });
      expect(err).toMatchObject({ code: 'ERR_PODNET_INVALID_ARGUMENT' });
      expect(err!.message.split('\n')).toHaveLength(1);
    }
    expect([await view(a), await view(b)]).toEqual(before);
    expect(await link.impairment()).toBeUndefined();
    await link.impair({ delay: 5 });
    const impaired = [await view(a), await view(b)];
    await expect(link.impair({ loss: -5 })).rejects.toMatchObject({
      code: 'ERR_PODNET_INVALID_ARGUMENT',
    });
    expect([await view(a), await view(b)]).toEqual(impaired);
    expect((await link.impairment())!.impairment).toEqual({ delay: 5 });
  });

  it('a failure half way leaves both ends as they were', async () => {
    const link = topo.link('a', 'b');
    // An ingress qdisc at b's end holds the handle the delay line's clsact
    // needs: a's end is done by then, and must be undone.
    expect((await b.exec('tc', ['qdisc', 'add', 'dev', 'eth0', 'ingress'])).code).toBe(0);
    const before = [await view(a), await view(b)];
    const err = await link.impair({ delay: 20 }).catch((e: unknown) => e as Error);
    if (err) {
      expect(err.message).toMatch(/b'/);
      expect(err.message.split('\n')).toHaveLength(1);
      expect([await view(a), await view(b)]).toEqual(before);
      expect(await link.impairment()).toBeUndefined();
    } else {
      // The kernel has netem, which an ingress qdisc does not stop.
      expect((await link.impairment())!.mechanism).toBe('netem');
      await link.clear();
    }
    // Without the ingress qdisc the same request is applied.
    expect((await b.exec('tc', ['qdisc', 'del', 'dev', 'eth0', 'ingress'])).code).toBe(0);
    await link.impair({ delay: 20 });
    expect((await link.impairment())!.impairment).toEqual({ delay: 20 });
  });

  it("removing the topology stops the link's delay lines", async () => {
    const taps = (): number =>
      readdirSync('/proc/self/fd').filter((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`) === '/dev/net/tun';
        } catch {
          return false; // closed meanwhile
        }
      }).length;
    const link = topo.link('a', 'b');
    const open = taps();
    await link.impair({ delay: 5 });
    const { mechanism } = (await link.impairment())!;
    expect(taps()).toBe(mechanism === 'delay-line' ? open + 2 : open);
    await topo.remove();
    // A tap's fd would hold its namespace (and the veth) alive.
    expect(taps()).toBe(open);
    expect(await link.impairment()).toBeUndefined();
  });
});
