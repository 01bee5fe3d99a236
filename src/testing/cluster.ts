// A cluster on one machine: node namespaces on an underlay bridge, each a
// kubelet's node in miniature, with its own CNI config, cache and lease
// directories, and pods set up by the unchanged CNI plugins run inside the
// node's namespace (CniRuntime's `netns`), as a node's container runtime
// runs them. Between nodes: host-gw routes or flannel's VXLAN shape; faults
// at the switch (partitions) and on any link (impairment). Everything is in
// the cluster's namespaces and its files directory, both registered for the
// reaper before they are made.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseNetworkList } from '../cni/config.js';
import { findPlugins } from '../cni/invoke/find.js';
import { CniRuntime } from '../cni/runtime.js';
import { publish } from '../diagnostics.js';
import { AbortError, InvalidArgumentError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import { parseCidr } from '../netns/rtnl-write.js';
import {
  type ClusterPlugin,
  type NodeCniPlan,
  nodeConflist,
  nodeDirs,
  sliceGateway,
  subnetEnv,
} from './cluster-cni.js';
import { type ClusterBackend, checkBackend, wireBackend } from './cluster-net.js';
import { type ClusterInternals, ClusterNode, type ClusterPod } from './cluster-node.js';
import { type PartitionState, PartitionTable } from './cluster-partition.js';
import {
  type HostInterface,
  linksReady,
  subnetPrefix,
  TopologyHost,
  TopologyLink,
} from './host.js';
import { type ClusterRecord, defaultRecordDir } from './reaper.js';
import { Registration } from './registration.js';

export type { ClusterPlugin, NodeCniPlan } from './cluster-cni.js';
export type { ClusterBackend } from './cluster-net.js';
export { ClusterNode, ClusterPod, type PodOptions } from './cluster-node.js';
export type { PartitionState } from './cluster-partition.js';

/** Options of {@link createCluster}. */
export interface ClusterOptions {
  /** Number of nodes, 1 to 32 (default 3). */
  nodes?: number;
  /**
   * The pod CIDR, an IPv4 network of prefix 8 to 22 (default a random
   * 10.X.0.0/16, X from 232 to 253). Node N (from 1) gets its Nth /24 as
   * its slice.
   */
  podCidr?: string;
  /** How pod traffic crosses nodes (default 'host-gw'). */
  backend?: ClusterBackend;
  /** The nodes' underlay IPv4 /24 (default a random 10.231.X.0/24); node N is .N. */
  underlay?: string;
  /** The VXLAN network identifier (vxlan only; default 1, flannel's). */
  vni?: number;
  /** The pod network's CNI plugin (default 'bridge'; 'flannel' where flannel's plugin is installed). */
  plugin?: ClusterPlugin;
  /**
   * Another pod network: each node's config list, made from what the node
   * is (its slice, gateway, MTU, directories; use `dataDir` as host-local's
   * dataDir to keep the node's leases its own). Its plugins run unchanged
   * inside the node, as `plugin`'s do; `plugin` is then not read.
   */
  conflist?: (node: NodeCniPlan) => Record<string, unknown>;
  /** Where plugin binaries are looked up (default CniRuntime's). */
  pluginDirs?: readonly string[];
  /** Namespace directory (default as NetworkNamespace.create). */
  dir?: string;
  /** Where the cluster is registered for its reaper (default {@link defaultRecordDir}). */
  recordDir?: string;
  /** The name `podnet cluster ls` shows (default `cluster-<hex>` of its record). */
  name?: string;
  /** Kept when this process ends, until removed by name (`podnet cluster up`). */
  persistent?: boolean;
  /** Aborting stops the build, removes what was made, and rejects with AbortError (ERR_PODNET_ABORTED). */
  signal?: AbortSignal;
}

/** A cluster: its nodes, its switch, its faults. Remove it (or `await using`) to delete everything. */
export interface Cluster extends AsyncDisposable {
  /** Its name. */
  readonly name: string;
  /** How pod traffic crosses nodes. */
  readonly backend: ClusterBackend;
  /** The pod CIDR. */
  readonly podCidr: string;
  /** The nodes, node1 first. */
  readonly nodes: ClusterNode[];
  /** The switch namespace holding the underlay bridge and the partition table. */
  readonly switch: NetworkNamespace;
  /** The record its reaper reads. */
  readonly record: string;
  /** The node of that name or number (from 1). */
  node(which: string | number): ClusterNode;
  /** Every pod, node by node. */
  pods(): ClusterPod[];
  /**
   * Cuts groups of nodes from each other: nodes of one group stay
   * connected, nodes of different groups reach each other not at all
   * (underlay and pod traffic, both ways). Nodes named in no group form
   * one more group. Replaces any partition before it, in one transaction.
   */
  partition(...groups: (ClusterNode | string | number)[][]): Promise<void>;
  /** Ends any partition (one transaction). */
  heal(): Promise<void>;
  /** The current partition's groups by node name ([] when whole), and the frames it has dropped. */
  partitionState(): Promise<PartitionState>;
  /** Removes every namespace, file and record of the cluster. */
  close(): Promise<void>;
}

// The pod CIDR as an integer network and prefix, checked.
function checkPodCidr(v: unknown, nodes: number): { base: number; prefix: number; text: string } {
  // Random default: 10.232-253.0.0/16, clear of the topologies' underlays (10.231.X.0/24).
  const text = v === undefined ? `10.${232 + Math.floor(Math.random() * 22)}.0.0/16` : v;
  let parsed: ReturnType<typeof parseCidr> | undefined;
  try {
    parsed = typeof text === 'string' ? parseCidr(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || parsed.family !== 4 || parsed.prefix < 8 || parsed.prefix > 22)
    throw new InvalidArgumentError(
      `podCidr must be an IPv4 network of prefix 8 to 22 such as 10.244.0.0/16, not '${String(text)}'`,
    );
  const base = parsed.bytes.readUInt32BE(0);
  const mask = parsed.prefix === 0 ? 0 : (0xffffffff << (32 - parsed.prefix)) >>> 0;
  if ((base & mask) >>> 0 !== base)
    throw new InvalidArgumentError(`podCidr '${String(text)}' has host bits set`);
  if (nodes + 1 > 2 ** (24 - parsed.prefix))
    throw new InvalidArgumentError(
      `podCidr '${String(text)}' has too few /24 slices for ${nodes} nodes`,
    );
  return { base, prefix: parsed.prefix, text: text as string };
}

const ipOf = (n: number): string => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

function checkCount(v: unknown): number {
  const n = v ?? 3;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 32)
    throw new InvalidArgumentError(`nodes must be an integer from 1 to 32, not ${String(n)}`);
  return n as number;
}

function checkVni(v: unknown): number {
  const n = v ?? 1;
  if (!Number.isInteger(n) || (n as number) < 1 || (n as number) > 0xffffff)
    throw new InvalidArgumentError(`vni must be an integer from 1 to 16777215, not ${String(v)}`);
  return n as number;
}

/**
 * Builds a cluster: a switch namespace with the underlay bridge, `nodes`
 * node namespaces on it (node N at .N of the underlay, its slice the Nth
 * /24 of the pod CIDR), each with its CNI files and runtime, and the
 * backend's routes. Pods are added with `cluster.nodes[i].addPod()`. The
 * cluster is registered for the reaper before anything is made; a failure
 * or an abort half way removes whatever was made.
 */
export async function createCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const count = checkCount(opts.nodes);
  const backend = checkBackend(opts.backend);
  const vni = checkVni(opts.vni);
  const cidr = checkPodCidr(opts.podCidr, count);
  const underlay = subnetPrefix(opts.underlay);
  const underlayBase = parseCidr(`${underlay}.0/24`).bytes.readUInt32BE(0);
  const cidrSize = 2 ** (32 - cidr.prefix);
  if (underlayBase >= cidr.base && underlayBase < cidr.base + cidrSize)
    throw new InvalidArgumentError(`the underlay ${underlay}.0/24 is inside podCidr ${cidr.text}`);
  const plugin = opts.plugin ?? 'bridge';
  if (plugin !== 'bridge' && plugin !== 'flannel')
    throw new InvalidArgumentError(`plugin must be 'bridge' or 'flannel', not '${String(plugin)}'`);
  if (opts.name !== undefined && !/^[a-z][a-z0-9-]{0,30}$/.test(opts.name))
    throw new InvalidArgumentError(
      `a cluster name is a lowercase letter, then up to 30 of a-z, 0-9, '-', not '${opts.name}'`,
    );
  const signal = opts.signal;
  const checkSignal = (): void => {
    if (signal?.aborted) throw new AbortError('building a cluster', { cause: signal.reason });
  };
  checkSignal();
  const pluginDirs = new CniRuntime(
    opts.pluginDirs === undefined ? {} : { pluginDirs: opts.pluginDirs },
  ).pluginDirs;
  if (opts.conflist !== undefined && typeof opts.conflist !== 'function')
    throw new InvalidArgumentError('conflist is a function of a node, returning its config list');

  const reg = new Registration(1 + count, opts.dir === undefined ? {} : { dir: opts.dir });
  // The switch is the first namespace registered.
  const switchPath = reg.nextPath();
  const nodes: ClusterNode[] = [];
  const slices = Array.from({ length: count }, (_, i) => `${ipOf(cidr.base + (i + 1) * 256)}/24`);
  let name = opts.name ?? '';
  const describe = (): ClusterRecord => ({
    name,
    switch: switchPath,
    backend,
    podCidr: cidr.text,
    nodes: nodes.map((n) => ({
      name: n.name,
      namespace: n.ns.path,
      address: n.address,
      podSubnet: n.podSubnet,
    })),
    pods: nodes.flatMap((n) =>
      n.pods.map((p) => ({ name: p.name, node: n.name, namespace: p.netns.path, ip: p.ip })),
    ),
  });
  const internals: ClusterInternals = {
    id: '',
    podNames: new Set(),
    registration: reg,
    pods: () => nodes.flatMap((n) => n.pods),
    describe,
    recordState: () => reg.grow(0, describe()),
  };
  await reg.start(opts.recordDir ?? defaultRecordDir(), {
    ...(opts.persistent ? { persistent: true } : {}),
  });
  try {
    internals.id = reg.record.replace(/^.*\/([0-9a-f]{16})\.json$/, '$1').slice(0, 12);
    if (name === '') name = `cluster-${internals.id}`;
    await mkdir(reg.filesDir, { mode: 0o700 });
    await reg.grow(0, describe());
    // Every node's list, and every plugin binary of it, before any namespace
    // is made (a bad list or a missing plugin is a CniConfigError).
    const mtu = backend === 'vxlan' ? 1450 : 1500;
    const plans = slices.map((podSubnet, i): NodeCniPlan => {
      const dir = join(reg.filesDir, `node${i + 1}`);
      const gateway = sliceGateway(podSubnet);
      return {
        name: `node${i + 1}`,
        dir,
        ...nodeDirs(dir),
        podCidr: cidr.text,
        podSubnet,
        gateway,
        mtu,
        plugin,
      };
    });
    const lists = plans.map((plan) => {
      const raw = opts.conflist ? opts.conflist({ ...plan }) : nodeConflist(plan);
      const list = parseNetworkList(raw, join(plan.confDir, 'the cluster network'));
      findPlugins(list, pluginDirs);
      return { raw, list };
    });

    const sw = new TopologyHost('switch', await reg.namespace());
    await sw.ns.addLink('br0', 'bridge');
    await sw.ns.setLinkUp('br0');
    const table = new PartitionTable(
      sw,
      Array.from({ length: count }, (_, i) => `node${i + 1}`),
    );
    await table.create();
    publish('podnet:testing:cluster', { record: reg.record, phase: 'switch' });
    const wiring = [];
    for (let i = 1; i <= count; i++) {
      checkSignal();
      const host = new TopologyHost(`node${i}`, await reg.namespace());
      const address = `${underlay}.${i}`;
      const iface: HostInterface = { ifname: 'eth0', address };
      const port: HostInterface = { ifname: host.name, address: '' };
      await host.ns.addVeth('eth0', { name: host.name, netns: sw.ns });
      await sw.ns.setMaster(host.name, 'br0');
      await sw.ns.setLinkUp(host.name);
      await host.ns.addAddress('eth0', `${address}/24`);
      await host.ns.setLinkUp('eth0');
      await host.sysctl('net.ipv4.ip_forward', 1);
      host.interfaces.push(iface);
      sw.interfaces.push(port);
      const link = new TopologyLink(
        [
          { host, iface },
          { host: sw, iface: port },
        ],
        `${underlay}.0/24`,
        undefined,
      );
      iface.link = link;
      port.link = link;

      const plan = plans[i - 1]!;
      const { raw, list: network } = lists[i - 1]!;
      const dirs = { confDir: plan.confDir, cacheDir: plan.cacheDir, dataDir: plan.dataDir };
      for (const d of [plan.dir, dirs.confDir, dirs.cacheDir, dirs.dataDir])
        await mkdir(d, { mode: 0o700 });
      await writeFile(
        join(dirs.confDir, `10-${network.name}.conflist`),
        `${JSON.stringify(raw, null, 2)}\n`,
        { mode: 0o600 },
      );
      if (!opts.conflist && plugin === 'flannel')
        await writeFile(join(plan.dir, 'subnet.env'), subnetEnv(plan));
      const runtime = new CniRuntime({
        confDir: dirs.confDir,
        cacheDir: dirs.cacheDir,
        netns: host.ns.path,
        defaultNetwork: null,
        pluginDirs,
      });
      const podSubnet = plan.podSubnet;
      nodes.push(
        new ClusterNode(internals, host, { address, podSubnet, link, runtime, network, dirs }),
      );
      wiring.push({ host, address, podSubnet });
      await reg.grow(0, describe());
      publish('podnet:testing:cluster', { record: reg.record, phase: `node:${i}` });
    }
    await linksReady([sw, ...nodes.map((n) => n.host)]);
    checkSignal();
    await wireBackend(backend, wiring, vni);
    publish('podnet:testing:cluster', { record: reg.record, phase: 'wired' });

    const byName = (which: ClusterNode | string | number): ClusterNode => {
      const node =
        which instanceof ClusterNode
          ? nodes.find((n) => n === which)
          : typeof which === 'number'
            ? nodes[which - 1]
            : nodes.find((n) => n.name === which);
      if (!node) throw new InvalidArgumentError(`no node ${String(which)} in the cluster`);
      return node;
    };
    // A delay line's tap holds its namespace: the lines stop before the namespaces go.
    const remove = async (): Promise<void> => {
      for (const n of nodes) {
        n.link.release();
        for (const p of n.pods) p.link.release();
      }
      await reg.remove();
    };
    return {
      get name() {
        return name;
      },
      backend,
      podCidr: cidr.text,
      nodes,
      switch: sw.ns,
      record: reg.record,
      node: byName,
      pods: internals.pods,
      partition: (...given) => table.partition(given.map((g) => g.map((n) => byName(n).name))),
      heal: () => table.heal(),
      partitionState: () => table.state(),
      close: remove,
      [Symbol.asyncDispose]: remove,
    };
  } catch (err) {
    await reg.remove().catch(() => undefined);
    throw err;
  }
}
