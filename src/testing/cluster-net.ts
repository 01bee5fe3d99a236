// How pod traffic crosses a cluster's nodes: the routes between the nodes'
// pod slices (host-gw) or flannel's VXLAN shape (vxlan), made inside the
// nodes' namespaces over netlink.
import { InvalidArgumentError } from '../errors.js';
import {
  encodeNewAddr,
  encodeNewFdb,
  encodeNewNeighbor,
  encodeNewRoute,
  encodeNewVxlan,
  encodeSetIndexUp,
  FLANNEL_VXLAN_PORT,
} from '../netns/rtnl-write.js';
import type { TopologyHost } from './host.js';

/** How pod traffic crosses nodes: routes through the underlay, or VXLAN over it (flannel's backends). */
export type ClusterBackend = 'host-gw' | 'vxlan';

/** What the wiring of one node needs to know of it. */
export interface NodeWiring {
  host: TopologyHost;
  /** Its underlay address (eth0). */
  address: string;
  /** Its pod slice, e.g. 10.244.1.0/24. */
  podSubnet: string;
}

/** The VXLAN device's name, as flannel names it: `flannel.<VNI>`. */
export const vxlanName = (vni: number): string => `flannel.${vni}`;

/** The VTEP MAC of a node: locally administered, from its underlay address (unique in the cluster). */
export function vtepMac(address: string): string {
  return `0a:58:${address
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join(':')}`;
}

// The network address of a slice, which flannel gives the VXLAN device as a /32.
const sliceBase = (subnet: string): string => subnet.split('/')[0]!;

/**
 * Routes each node's traffic for every other node's slice. host-gw: one
 * route per peer through its underlay address. vxlan: the device with the
 * node's slice base as a /32, and per peer one onlink route through the
 * peer's slice base, one permanent neighbour (that address at the peer's
 * VTEP MAC) and one FDB entry (that MAC behind the peer's underlay
 * address): what flanneld's VXLAN backend programs, so the kernel needs
 * neither ARP nor learning across the tunnel.
 */
export async function wireBackend(
  backend: ClusterBackend,
  nodes: readonly NodeWiring[],
  vni: number,
): Promise<void> {
  for (const node of nodes) {
    const ns = node.host.ns;
    const peers = nodes.filter((n) => n !== node);
    const eth0 = (await ns.link('eth0')).index;
    if (backend === 'host-gw') {
      for (const peer of peers)
        ns.rtnlAckSync(
          `routing ${peer.podSubnet} in ${node.host.name}`,
          encodeNewRoute({ dst: peer.podSubnet, gateway: peer.address, ifindex: eth0 }),
        );
      continue;
    }
    const dev = vxlanName(vni);
    ns.rtnlAckSync(
      `adding ${dev} to ${node.host.name}`,
      encodeNewVxlan({
        name: dev,
        vni,
        local: node.address,
        underlayIfindex: eth0,
        port: FLANNEL_VXLAN_PORT,
        learning: false,
        mac: vtepMac(node.address),
        mtu: 1450,
      }),
    );
    const index = (await ns.link(dev)).index;
    ns.rtnlAckSync(
      `adding ${sliceBase(node.podSubnet)}/32 to ${dev} of ${node.host.name}`,
      encodeNewAddr(index, `${sliceBase(node.podSubnet)}/32`),
    );
    ns.rtnlAckSync(`setting ${dev} of ${node.host.name} up`, encodeSetIndexUp(index));
    for (const peer of peers) {
      const via = sliceBase(peer.podSubnet);
      const mac = vtepMac(peer.address);
      ns.rtnlAckSync(
        `neighbour ${via} on ${dev} of ${node.host.name}`,
        encodeNewNeighbor({ ifindex: index, ip: via, mac }),
      );
      ns.rtnlAckSync(
        `FDB entry ${mac} on ${dev} of ${node.host.name}`,
        encodeNewFdb({ ifindex: index, mac, dst: peer.address }),
      );
      ns.rtnlAckSync(
        `routing ${peer.podSubnet} in ${node.host.name}`,
        encodeNewRoute({ dst: peer.podSubnet, gateway: via, ifindex: index, onlink: true }),
      );
    }
  }
}

/** Checks a backend name. */
export function checkBackend(v: unknown): ClusterBackend {
  if (v === undefined) return 'host-gw';
  if (v !== 'host-gw' && v !== 'vxlan')
    throw new InvalidArgumentError(`backend must be 'host-gw' or 'vxlan', not '${String(v)}'`);
  return v;
}
