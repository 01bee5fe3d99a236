// The stats endpoint of a process running a forwarder: what a query makes
// of a missing endpoint, a good reply and replies that do not check out
// (another process wrote them). A real PortForwarder answers, in this
// process; the bad replies come from a server under this test's own name.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { processIdentity } from '../../../../src/process.js';
import {
  queryForwarderStats,
  serveForwarderStats,
  statsEndpointName,
} from '../../../../src/rootless/forwarder/stats-endpoint.js';

describe('forwarder stats endpoint', () => {
  const servers: net.Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  });

  /** A server answering `reply` under a made-up identity of this process. */
  async function fake(reply: string): Promise<{ pid: number; startTime: string }> {
    const id = { pid: process.pid, startTime: `test-${Math.random().toString(36).slice(2)}` };
    const server = net.createServer((s) => s.end(reply));
    servers.push(server);
    await new Promise<void>((r) => server.listen(statsEndpointName(id), r));
    return id;
  }

  const good = {
    active: 0,
    connections: 1,
    failed: 0,
    dropped: 0,
    bytes: 12,
    flows: 0,
    activeFlows: 0,
    datagrams: 0,
    datagramsDropped: 0,
    ports: [
      {
        hostIP: '127.0.0.1',
        hostPort: 8080,
        containerPort: 80,
        protocol: 'tcp',
        connections: 1,
        active: 0,
        rxBytes: 5,
        txBytes: 7,
        rxDatagrams: 0,
        txDatagrams: 0,
      },
    ],
  };

  it('answers with this process counters, and nothing listening is no forwarder', async () => {
    const server = await serveForwarderStats(() => good as never);
    servers.push(server);
    expect(await queryForwarderStats(processIdentity(process.pid))).toEqual(good);
    expect(await queryForwarderStats({ pid: process.pid, startTime: 'none' })).toBeUndefined();
  });

  it.each([
    ['not JSON', 'nope', /not JSON/],
    ['a negative count', JSON.stringify({ ...good, bytes: -1 }), /bad reply: bytes/],
    ['an unknown field', JSON.stringify({ ...good, extra: 1 }), /bad reply/],
    [
      'a bad port',
      JSON.stringify({ ...good, ports: [{ ...good.ports[0], hostPort: 70000 }] }),
      /bad reply: ports\.0\.hostPort/,
    ],
  ])('refuses %s with a typed error', async (_what, reply, message) => {
    const id = await fake(reply);
    const err = await queryForwarderStats(id).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_PODNET_FORWARDER' });
    expect((err as Error).message).toMatch(message);
  });
});
