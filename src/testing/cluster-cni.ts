// What a cluster node's CNI configuration is, as a kubelet's node would
// have it: one config list in the node's own config directory, its leases in
// the node's own data directory. With the bridge plugin (what Debian ships)
// the list is bridge + host-local on the node's slice of the pod CIDR; with
// flannel's plugin it is flannel, reading the subnet file flanneld writes,
// delegating to bridge. Pure: the caller writes the files.
import { join } from 'node:path';

/** The network name every node's list has (a pod network is one network across nodes). */
export const CLUSTER_NETWORK = 'podnet-cluster';

/** The pod network's plugin: Debian's bridge, or flannel's CNI plugin where it is installed. */
export type ClusterPlugin = 'bridge' | 'flannel';

/** What one node's configuration is made from. */
export interface NodeCniPlan {
  /** The node's name (node1, ...). */
  name: string;
  /** The node's directory: net.d, cache and ipam are under it. */
  dir: string;
  /** Its CNI config directory (dir/net.d). */
  confDir: string;
  /** Its libcni result cache (dir/cache). */
  cacheDir: string;
  /** Its host-local data directory (dir/ipam): where its leases live. */
  dataDir: string;
  /** The whole pod CIDR, e.g. 10.244.0.0/16. */
  podCidr: string;
  /** The node's slice, e.g. 10.244.1.0/24. */
  podSubnet: string;
  /** The slice's gateway, its first address (10.244.1.1): the node's own on the pods' side. */
  gateway: string;
  /** The pods' MTU (1450 under VXLAN's 50 bytes, else 1500). */
  mtu: number;
  /** Which plugin (of the built-in lists). */
  plugin: ClusterPlugin;
}

/** Where a node keeps its CNI files. */
export function nodeDirs(dir: string): { confDir: string; cacheDir: string; dataDir: string } {
  return {
    confDir: join(dir, 'net.d'),
    cacheDir: join(dir, 'cache'),
    dataDir: join(dir, 'ipam'),
  };
}

/** The slice's gateway: its first address (`10.244.1.0/24` -> `10.244.1.1`). */
export function sliceGateway(subnet: string): string {
  const [net] = subnet.split('/');
  const o = net!.split('.').map(Number);
  return `${o[0]}.${o[1]}.${o[2]}.${o[3]! + 1}`;
}

/**
 * The node's config list. Bridge: isGateway (the pods' default route is the
 * bridge), no masquerade (a pod's address is seen unchanged on every node),
 * hairpin, the node's slice in host-local with the node's data directory.
 * Flannel: the plugin as flannel's manifests configure it, with the subnet
 * file and its data directory the node's own, and host-local's data
 * directory passed through its ipam section (flannel-io/cni-plugin keeps a
 * given ipam section and fills in the ranges and routes; the older copy in
 * containernetworking/plugins replaced it). The delegate says ipMasq false
 * itself: flannel would otherwise turn FLANNEL_IPMASQ=false into a bridge
 * that masquerades everything leaving the node's slice.
 */
export function nodeConflist(plan: NodeCniPlan): Record<string, unknown> {
  const { dataDir } = plan;
  if (plan.plugin === 'flannel') {
    return {
      cniVersion: '1.0.0',
      name: CLUSTER_NETWORK,
      plugins: [
        {
          type: 'flannel',
          subnetFile: join(plan.dir, 'subnet.env'),
          dataDir: join(plan.dir, 'flannel'),
          delegate: { hairpinMode: true, isDefaultGateway: true, ipMasq: false, mtu: plan.mtu },
          ipam: { type: 'host-local', dataDir },
        },
      ],
    };
  }
  return {
    cniVersion: '1.0.0',
    name: CLUSTER_NETWORK,
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        mtu: plan.mtu,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: plan.podSubnet, gateway: plan.gateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir,
        },
      },
    ],
  };
}

/**
 * The subnet file as flanneld writes it (/run/flannel/subnet.env): the
 * network, the node's slice by its gateway address, the MTU, and whether
 * flanneld masquerades (it does not here: no masquerade inside a cluster).
 */
export function subnetEnv(plan: NodeCniPlan): string {
  const prefix = plan.podSubnet.split('/')[1];
  return [
    `FLANNEL_NETWORK=${plan.podCidr}`,
    `FLANNEL_SUBNET=${plan.gateway}/${prefix}`,
    `FLANNEL_MTU=${plan.mtu}`,
    'FLANNEL_IPMASQ=false',
    '',
  ].join('\n');
}
