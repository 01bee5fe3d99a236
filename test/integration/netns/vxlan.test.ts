// flannel's VXLAN backend shape, made with podnet's encoders over each
// namespace's kept netlink socket: two "nodes" joined by a veth underlay,
// a flannel.1 device with a /32 in each, and per peer the onlink route, the
// permanent neighbour and the FDB entry flannel writes. Read back with
// ip(8) and bridge(8) as flannel's users would, then a TCP echo between the
// /32s through the tunnel.
import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NetworkNamespace } from '../../../src/netns/index.js';
import {
  encodeNewAddr,
  encodeNewFdb,
  encodeNewNeighbor,
  encodeNewRoute,
  encodeNewVxlan,
  encodeSetIndexUp,
  FLANNEL_VXLAN_PORT,
} from '../../../src/netns/rtnl-write.js';
import { tempNamespace } from '../../../src/testing/index.js';
import { inNetns, isRoot } from '../../helpers/host.js';
import { reportSkip } from '../../helpers/skip.js';
import { echoLine } from '../../helpers/tcp.js';

const skip = reportSkip('VXLAN integration tests', isRoot ? undefined : 'not root');

/** One node: its namespace, underlay address, VXLAN MAC and pod subnet (its .0 is the /32). */
interface Node {
  ns: NetworkNamespace;
  underlay: string;
  mac: string;
  subnet: string;
}

const VNI = 1;
const DEV = `flannel.${VNI}`;
const vtepAddress = (n: Node) => n.subnet.replace(/\/\d+$/, '');

async function index(ns: NetworkNamespace, name: string): Promise<number> {
  return (await ns.link(name)).index;
}

/** What flanneld does on a node for its own subnet: the device, its /32, up. */
async function makeVtep(n: Node): Promise<void> {
  const what = `making ${DEV} in '${n.ns.path}'`;
  n.ns.rtnlAckSync(
    what,
    encodeNewVxlan({
      name: DEV,
      vni: VNI,
      local: n.underlay,
      underlayIfindex: await index(n.ns, 'ul0'),
      mac: n.mac,
      mtu: 1450,
    }),
  );
  const vx = await index(n.ns, DEV);
  n.ns.rtnlAckSync(what, encodeNewAddr(vx, `${vtepAddress(n)}/32`));
  n.ns.rtnlAckSync(what, encodeSetIndexUp(vx));
}

/** What flanneld does on node N when it learns of PEER's lease. */
async function addPeer(n: Node, peer: Node): Promise<void> {
  const vx = await index(n.ns, DEV);
  const what = `adding peer ${peer.subnet} in '${n.ns.path}'`;
  const gateway = vtepAddress(peer);
  n.ns.rtnlAckSync(what, encodeNewNeighbor({ ifindex: vx, ip: gateway, mac: peer.mac }));
  n.ns.rtnlAckSync(what, encodeNewFdb({ ifindex: vx, mac: peer.mac, dst: peer.underlay }));
  n.ns.rtnlAckSync(what, encodeNewRoute({ dst: peer.subnet, gateway, ifindex: vx, onlink: true }));
}

async function ipJson<T>(n: Node, argv: string[]): Promise<T> {
  return JSON.parse(await inNetns(n.ns.path, argv)) as T;
}

/** A line sent from FROM to TO's /32 and echoed back, with the source address TO saw. */
const echoThroughTunnel = (from: Node, to: Node) =>
  echoLine(from.ns, to.ns, vtepAddress(to), 'over vxlan\n');

describe.skipIf(skip !== undefined)("flannel's VXLAN shape between two namespaces", () => {
  let a: Node;
  let b: Node;

  beforeEach(async () => {
    const nsA = await tempNamespace();
    const nsB = await tempNamespace().catch(async (e: unknown) => {
      await nsA.remove();
      throw e;
    });
    a = { ns: nsA, underlay: '192.168.77.1', mac: '0a:58:0a:f4:01:00', subnet: '10.244.1.0/24' };
    b = { ns: nsB, underlay: '192.168.77.2', mac: '0a:58:0a:f4:02:00', subnet: '10.244.2.0/24' };
    await a.ns.addVeth('ul0', { name: 'ul0', netns: b.ns });
    for (const n of [a, b]) {
      await n.ns.addAddress('ul0', `${n.underlay}/24`);
      await n.ns.setLinkUp('ul0');
    }
  });
  afterEach(async () => {
    // The namespaces take the veth, the devices and every entry with them.
    await a.ns.remove();
    await b.ns.remove();
  });

  it('each entry is what flannel makes, and TCP works through the tunnel', async () => {
    for (const n of [a, b]) await makeVtep(n);
    await addPeer(a, b);
    await addPeer(b, a);

    for (const [n, peer] of [
      [a, b],
      [b, a],
    ] as const) {
      const [link] = await ipJson<
        {
          flags: string[];
          mtu: number;
          address: string;
          linkinfo: { info_kind: string; info_data: Record<string, unknown> };
        }[]
      >(n, ['ip', '-d', '-j', 'link', 'show', DEV]);
      expect(link!.flags).toContain('UP');
      expect(link!.mtu).toBe(1450);
      expect(link!.address).toBe(n.mac);
      expect(link!.linkinfo.info_kind).toBe('vxlan');
      expect(link!.linkinfo.info_data).toMatchObject({
        id: VNI,
        local: n.underlay,
        link: 'ul0',
        port: FLANNEL_VXLAN_PORT,
        learning: false,
      });

      const [addr] = await ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(n, [
        'ip',
        '-4',
        '-j',
        'addr',
        'show',
        DEV,
      ]);
      expect(addr!.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toEqual([
        `${vtepAddress(n)}/32`,
      ]);

      expect(await ipJson(n, ['ip', '-j', 'neigh', 'show', 'dev', DEV])).toEqual([
        { dst: vtepAddress(peer), lladdr: peer.mac, state: ['PERMANENT'] },
      ]);

      const fdb = await ipJson<{ mac: string }[]>(n, ['bridge', '-j', 'fdb', 'show', 'dev', DEV]);
      expect(fdb.filter((e) => e.mac === peer.mac)).toEqual([
        { mac: peer.mac, dst: peer.underlay, flags: ['self'], state: 'permanent' },
      ]);
      // Learning is off: nothing else was learnt or made.
      expect(fdb.filter((e) => e.mac !== peer.mac)).toEqual([]);

      expect(await ipJson(n, ['ip', '-j', 'route', 'show', 'dev', DEV])).toEqual([
        { dst: peer.subnet, gateway: vtepAddress(peer), flags: ['onlink'] },
      ]);
    }

    const before = a.ns.linkStatsSync(DEV);
    const ab = await echoThroughTunnel(a, b);
    const ba = await echoThroughTunnel(b, a);
    expect(ab).toEqual({ echo: 'over vxlan\n', seen: vtepAddress(a) });
    expect(ba).toEqual({ echo: 'over vxlan\n', seen: vtepAddress(b) });
    // It went through the tunnel device, not around it.
    const after = a.ns.linkStatsSync(DEV);
    expect(after.txPackets).toBeGreaterThan(before.txPackets);
    expect(after.rxPackets).toBeGreaterThan(before.rxPackets);
  });

  it('without the FDB entry the packets have nowhere to go: the entry is what carries them', async () => {
    for (const n of [a, b]) await makeVtep(n);
    await addPeer(b, a);
    // A has the route and the neighbour to B, but no FDB entry for B's MAC.
    const vx = await index(a.ns, DEV);
    const gateway = vtepAddress(b);
    a.ns.rtnlAckSync(
      'route',
      encodeNewRoute({ dst: b.subnet, gateway, ifindex: vx, onlink: true }),
    );
    a.ns.rtnlAckSync('neigh', encodeNewNeighbor({ ifindex: vx, ip: gateway, mac: b.mac }));

    let accepted = 0;
    const server = net.createServer((s) => {
      accepted++;
      s.destroy();
    });
    const { port } = await b.ns.listen(server, { host: vtepAddress(b), port: 0 });
    const before = a.ns.linkStatsSync(DEV).txDropped;
    // A SYN from A: the VXLAN device finds no remote for B's MAC and drops it.
    const fd = await a.ns.socket({ type: 'tcp4' });
    const socket = new net.Socket({ fd, readable: true, writable: true });
    socket.on('error', () => undefined);
    socket.connect({ host: gateway, port });
    try {
      const deadline = Date.now() + 3000;
      while (a.ns.linkStatsSync(DEV).txDropped === before && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(a.ns.linkStatsSync(DEV).txDropped).toBeGreaterThan(before);
      expect(accepted).toBe(0);
    } finally {
      socket.destroy();
      server.close();
    }
    // The one entry added, the same connection works.
    a.ns.rtnlAckSync('fdb', encodeNewFdb({ ifindex: vx, mac: b.mac, dst: b.underlay }));
    expect(await echoThroughTunnel(a, b)).toEqual({ echo: 'over vxlan\n', seen: vtepAddress(a) });
  });
});
