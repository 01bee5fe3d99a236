// A node of a cluster and its pods: the node's CNI runtime (plugins run in
// the node's namespace, with the node's own config, cache and lease
// directories), a pod's CNI ADD and DEL, and GC, as a kubelet's runtime
// does them on one node. The cluster (cluster.ts) makes the nodes.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { CniNetworkList } from '../cni/config.js';
import { normalizeResult } from '../cni/result.js';
import type { CniRuntime } from '../cni/runtime.js';
import { publish } from '../diagnostics.js';
import { AbortError, InvalidArgumentError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import { sliceGateway } from './cluster-cni.js';
import { type HostInterface, interfacesReady, TopologyHost, TopologyLink } from './host.js';
import type { ClusterRecord } from './reaper.js';
import type { Registration } from './registration.js';

/** Options of {@link ClusterNode.addPod}. */
export interface PodOptions {
  /** The pod's name: a lowercase letter, then up to 30 of a-z, 0-9, '-'; unique in the cluster. */
  name: string;
  /** Aborting stops the pod's setup (CNI ADD is rolled back). */
  signal?: AbortSignal;
}

/** A pod: a namespace attached to the pod network by its node's plugins. */
export class ClusterPod {
  /** Its name. */
  readonly name: string;
  /** The node it runs on. */
  readonly node: ClusterNode;
  /** Its network namespace. */
  readonly netns: NetworkNamespace;
  /** Its pod IP (eth0). */
  readonly ip: string;
  /** The CNI container ID its attachment has. */
  readonly containerId: string;
  /** The veth between the pod's eth0 and its node's bridge (impair it to slow this pod only). */
  readonly link: TopologyLink;
  /** @internal The host of its namespace. */
  readonly host: TopologyHost;

  /** @internal Made by ClusterNode.addPod. */
  constructor(
    node: ClusterNode,
    name: string,
    host: TopologyHost,
    ip: string,
    containerId: string,
    link: TopologyLink,
  ) {
    this.node = node;
    this.name = name;
    this.host = host;
    this.netns = host.ns;
    this.ip = ip;
    this.containerId = containerId;
    this.link = link;
  }

  /** Runs a command in the pod to completion (see {@link TopologyHost.exec}). */
  exec(...args: Parameters<TopologyHost['exec']>): ReturnType<TopologyHost['exec']> {
    return this.host.exec(...args);
  }

  /** Starts a command in the pod (see {@link TopologyHost.spawn}); killed when the pod goes. */
  spawn(...args: Parameters<TopologyHost['spawn']>): ReturnType<TopologyHost['spawn']> {
    return this.host.spawn(...args);
  }

  /** CNI DEL on its node (its lease is freed), then its namespace is removed. */
  async remove(): Promise<void> {
    await this.node.removePod(this);
  }
}

/** A node: a namespace on the underlay, with its own CNI runtime, directories and pods. */
export class ClusterNode {
  /** `node1`, `node2`, ... */
  readonly name: string;
  /** Its namespace. */
  readonly ns: NetworkNamespace;
  /** Its underlay address (eth0). */
  readonly address: string;
  /** Its slice of the pod CIDR. */
  readonly podSubnet: string;
  /** Its link to the underlay switch (impair it to slow the node's traffic both ways). */
  readonly link: TopologyLink;
  /** Its CNI runtime: plugins run in the node's namespace, with its own config and cache directories. */
  readonly runtime: CniRuntime;
  /** Its pod network config list (loaded from its config directory). */
  readonly network: CniNetworkList;
  /** Its directories: CNI config, result cache, host-local leases. */
  readonly dirs: { confDir: string; cacheDir: string; dataDir: string };
  /** Its pods, in the order they were added. */
  readonly pods: ClusterPod[] = [];
  /** @internal */
  readonly host: TopologyHost;
  readonly #cluster: ClusterInternals;

  /** @internal Made by createCluster. */
  constructor(
    cluster: ClusterInternals,
    host: TopologyHost,
    parts: {
      address: string;
      podSubnet: string;
      link: TopologyLink;
      runtime: CniRuntime;
      network: CniNetworkList;
      dirs: ClusterNode['dirs'];
    },
  ) {
    this.#cluster = cluster;
    this.host = host;
    this.name = host.name;
    this.ns = host.ns;
    this.address = parts.address;
    this.podSubnet = parts.podSubnet;
    this.link = parts.link;
    this.runtime = parts.runtime;
    this.network = parts.network;
    this.dirs = parts.dirs;
  }

  /**
   * A new pod on this node: a namespace (registered first), then CNI ADD
   * through the node's runtime. A failure removes the namespace again.
   */
  async addPod(opts: PodOptions): Promise<ClusterPod> {
    const name = podName(opts?.name);
    if (opts.signal?.aborted)
      throw new AbortError(`adding pod '${name}'`, { cause: opts.signal.reason });
    // Taken at once, so two adds of one name at the same time cannot both go on.
    if (this.#cluster.podNames.has(name))
      throw new InvalidArgumentError(`the cluster already has a pod '${name}'`);
    this.#cluster.podNames.add(name);
    const reg = this.#cluster.registration;
    let ns: NetworkNamespace | undefined;
    let added = false;
    const containerId = `${this.#cluster.id}-${name}`;
    try {
      await reg.grow(1);
      ns = await reg.namespace();
      const host = new TopologyHost(name, ns);
      const raw = await this.runtime.add(
        this.network,
        { containerId, netns: ns.path, ifName: 'eth0' },
        opts.signal === undefined ? {} : { signal: opts.signal },
      );
      added = true;
      const result = normalizeResult(raw);
      const ip = result.ips[0]?.address.split('/')[0];
      // The pod's veth's host end: of the interfaces the result puts on the
      // node (a bridge plugin's bridge too, whatever its name), the veth.
      const veths = new Set(
        (await this.ns.links()).filter((l) => l.kind === 'veth').map((l) => l.name),
      );
      const hostEnd = result.interfaces.find((i) => i.sandbox === undefined && veths.has(i.name));
      if (ip === undefined || hostEnd === undefined)
        throw new InvalidArgumentError(
          `the plugin's result for pod '${name}' has no address or no host-side interface`,
        );
      const podIface: HostInterface = { ifname: 'eth0', address: ip };
      const nodeIface: HostInterface = {
        ifname: hostEnd.name,
        address: sliceGateway(this.podSubnet),
      };
      host.interfaces.push(podIface);
      const link = new TopologyLink(
        [
          { host, iface: podIface },
          { host: this.host, iface: nodeIface },
        ],
        this.podSubnet,
        undefined,
      );
      podIface.link = link;
      // Handed over once traffic can flow, as a topology is (see linksReady).
      await interfacesReady([
        { host, ifname: 'eth0' },
        { host: this.host, ifname: hostEnd.name },
      ]);
      const pod = new ClusterPod(this, name, host, ip, containerId, link);
      this.pods.push(pod);
      await this.#cluster.recordState();
      publish('podnet:testing:cluster', { record: reg.record, phase: `pod:${name}` });
      return pod;
    } catch (err) {
      // What the ADD did is undone by a DEL (CniRuntime.add rolls back its own failures).
      if (added && ns)
        await this.runtime
          .del(this.network, { containerId, netns: ns.path, ifName: 'eth0' })
          .catch(() => undefined);
      if (ns) await reg.drop(ns).catch(() => undefined);
      this.#cluster.podNames.delete(name);
      throw err;
    }
  }

  /** @internal CNI DEL for a pod of this node, then its namespace goes. */
  async removePod(pod: ClusterPod): Promise<void> {
    const i = this.pods.indexOf(pod);
    if (i < 0) return;
    await this.runtime.del(this.network, {
      containerId: pod.containerId,
      netns: pod.netns.path,
      ifName: 'eth0',
    });
    this.pods.splice(i, 1);
    this.#cluster.podNames.delete(pod.name);
    pod.link.release();
    await this.#cluster.registration.drop(pod.netns, this.#cluster.describe());
  }

  /**
   * CNI GC on this node: every cached attachment not among `valid` pods is
   * DELeted (its lease freed), as libcni's GC does; the pods stay, without
   * a network. Default: none valid.
   */
  async gc(valid: readonly ClusterPod[] = []): Promise<void> {
    await this.runtime.gc(this.network, {
      validAttachments: valid.map((p) => ({ containerId: p.containerId, ifName: 'eth0' })),
    });
  }

  /** Runs a command in the node's namespace to completion (see {@link TopologyHost.exec}). */
  exec(...args: Parameters<TopologyHost['exec']>): ReturnType<TopologyHost['exec']> {
    return this.host.exec(...args);
  }

  /** Starts a command in the node's namespace (see {@link TopologyHost.spawn}). */
  spawn(...args: Parameters<TopologyHost['spawn']>): ReturnType<TopologyHost['spawn']> {
    return this.host.spawn(...args);
  }

  /** The addresses host-local has leased on this node (its data directory), sorted. */
  async leases(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(join(this.dirs.dataDir, this.network.name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names.filter((n) => /^\d+\.\d+\.\d+\.\d+$/.test(n)).sort();
  }
}

/** @internal What a node reaches of its cluster. */
export interface ClusterInternals {
  id: string;
  /** Names of the pods added or being added. */
  podNames: Set<string>;
  registration: Registration;
  pods(): ClusterPod[];
  describe(): ClusterRecord;
  recordState(): Promise<void>;
}

function podName(v: unknown): string {
  if (typeof v !== 'string' || !/^[a-z][a-z0-9-]{0,30}$/.test(v))
    throw new InvalidArgumentError(
      `a pod name is a lowercase letter, then up to 30 of a-z, 0-9, '-', not '${String(v)}'`,
    );
  return v;
}
