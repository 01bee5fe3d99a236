import { existsSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, NetworkNamespace } from '../../../src/index.js';
import { createTopology, tempNamespace } from '../../../src/testing/index.js';
import { inNetns, isRoot } from '../../helpers/host.js';

async function exchange(
  server: NetworkNamespace,
  client: NetworkNamespace,
  host: string,
): Promise<string> {
  const srv = net.createServer((s) => s.end(`from ${s.remoteAddress}`));
  const { port } = await server.listen(srv, { host });
  try {
    const c = await client.connect({ host, port });
    const chunks: Buffer[] = [];
    for await (const x of c) chunks.push(x as Buffer);
    return Buffer.concat(chunks).toString();
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

describe.skipIf(!isRoot)('podnet/testing', () => {
  it('tempNamespace has lo up and is removed at the end of scope', async () => {
    let path = '';
    {
      await using ns = await tempNamespace();
      path = ns.path;
      expect((await ns.link('lo')).up).toBe(true);
      expect(await exchange(ns, ns, '127.0.0.1')).toBe('from 127.0.0.1');
    }
    expect(existsSync(path)).toBe(false);
  });

  it('a pair joins two hosts by a veth', async () => {
    await using topo = await createTopology({ subnet: '10.231.40.0/24', mtu: 1400 });
    const [a, b] = topo.hosts as [
      NonNullable<(typeof topo.hosts)[0]>,
      NonNullable<(typeof topo.hosts)[0]>,
    ];
    expect([a.address, b.address]).toEqual(['10.231.40.1', '10.231.40.2']);
    expect((await a.ns.link('eth0')).mtu).toBe(1400);
    expect(await exchange(a.ns, b.ns, a.address)).toBe('from 10.231.40.2');
  });

  it('a bridge joins three hosts through a switch namespace', async () => {
    const topo = await createTopology({ hosts: 3, subnet: '10.231.41.0/24' });
    const paths = [...topo.hosts.map((h) => h.ns.path), topo.switch!.path];
    const [h1, , h3] = topo.hosts;
    expect(await exchange(h3!.ns, h1!.ns, h3!.address)).toBe('from 10.231.41.1');
    const ports = JSON.parse(
      await inNetns(topo.switch!.path, ['ip', '-j', 'link', 'show', 'master', 'br0']),
    );
    expect(ports.map((p: { ifname: string }) => p.ifname).sort()).toEqual([
      'port0',
      'port1',
      'port2',
    ]);
    await topo.remove();
    for (const p of paths) expect(existsSync(p)).toBe(false);
  });

  it('rejects bad options before creating anything', async () => {
    const before = await NetworkNamespace.list();
    await expect(createTopology({ subnet: '10.0.0.0/16' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(createTopology({ hosts: 3, link: 'pair' })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(createTopology({ hosts: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    // A failure half way (an MTU the kernel refuses) removes what was made.
    await expect(createTopology({ mtu: 1 })).rejects.toMatchObject({ code: 'EINVAL' });
    expect(await NetworkNamespace.list()).toEqual(before);
  });
});
