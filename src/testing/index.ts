/**
 * `podnet/testing`: throwaway namespaces and small topologies for a test
 * suite's own use. Every object is named uniquely and removed by
 * `remove()` / `await using`, so tests can run in parallel and leave
 * nothing behind. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { AggregatePodnetError, InvalidArgumentError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';

/** Options of {@link createTopology}. */
export interface TopologyOptions {
  /** Number of hosts (default 2). */
  hosts?: number;
  /**
   * How hosts are joined: 'pair' (one veth between two hosts) or 'bridge'
   * (every host's veth on a bridge in a switch namespace of its own).
   * Default: 'pair' for two hosts, else 'bridge'.
   */
  link?: 'pair' | 'bridge';
  /** IPv4 /24 the hosts are numbered in (.1, .2, ...); default a random 10.231.X.0/24. */
  subnet?: string;
  /** Namespace directory (default as NetworkNamespace.create). */
  dir?: string;
  /** MTU of every veth (default the kernel's, 1500). */
  mtu?: number;
}

/** One host of a topology: a namespace with `eth0` up and numbered, and `lo` up. */
export interface TestHost {
  /** The host's namespace. */
  ns: NetworkNamespace;
  /** Its interface toward the others (always `eth0`). */
  ifname: string;
  /** Its IPv4 address. */
  address: string;
}

/** Hosts joined by veths or a bridge. Remove it (or `await using`) to delete everything. */
export interface Topology extends AsyncDisposable {
  /** The hosts, numbered from .1. */
  hosts: TestHost[];
  /** The switch namespace holding the bridge (bridge topologies only). */
  switch?: NetworkNamespace;
  /** Removes every namespace of the topology (their links go with them). */
  remove(): Promise<void>;
}

function subnetPrefix(subnet: string | undefined): string {
  if (subnet === undefined) return `10.231.${randomBytes(1)[0]}`;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) {
    throw new InvalidArgumentError(
      `subnet must be an IPv4 /24 such as 10.231.7.0/24, not '${subnet}'`,
    );
  }
  return `${m[1]}.${m[2]}.${m[3]}`;
}

/**
 * A throwaway namespace with `lo` up, uniquely named `podnet-test-<hex>`.
 * `await using ns = await tempNamespace()` removes it at the end of scope.
 */
export async function tempNamespace(opts: { dir?: string } = {}): Promise<NetworkNamespace> {
  const ns = await NetworkNamespace.create({
    ...opts,
    name: `podnet-test-${randomBytes(6).toString('hex')}`,
  });
  try {
    await ns.setLinkUp('lo');
    return ns;
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/**
 * Builds hosts joined by veths (two hosts) or a bridge (any number, up to
 * 253). A failure half way removes whatever was made.
 */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const count = opts.hosts ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 253) {
    throw new InvalidArgumentError(`hosts must be an integer from 1 to 253, not ${count}`);
  }
  const link = opts.link ?? (count === 2 ? 'pair' : 'bridge');
  if (link === 'pair' && count !== 2)
    throw new InvalidArgumentError("link 'pair' joins exactly two hosts");
  const prefix = subnetPrefix(opts.subnet);
  const where = opts.dir === undefined ? {} : { dir: opts.dir };
  const mtu = opts.mtu === undefined ? {} : { mtu: opts.mtu };
  const made: NetworkNamespace[] = [];
  const remove = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const ns of made.splice(0).reverse())
      await ns.remove().catch((e: unknown) => errors.push(e));
    if (errors.length)
      throw new AggregatePodnetError('ERR_PODNET_TEARDOWN', 'removing a test topology', errors);
  };
  try {
    const hosts: TestHost[] = [];
    for (let i = 0; i < count; i++) {
      const ns = await tempNamespace(where);
      made.push(ns);
      hosts.push({ ns, ifname: 'eth0', address: `${prefix}.${i + 1}` });
    }
    let sw: NetworkNamespace | undefined;
    if (link === 'pair') {
      const [a, b] = hosts as [TestHost, TestHost];
      await a.ns.addVeth('eth0', { name: 'eth0', netns: b.ns }, mtu);
    } else {
      sw = await tempNamespace(where);
      made.push(sw);
      await sw.addLink('br0', 'bridge');
      await sw.setLinkUp('br0');
      for (const [i, h] of hosts.entries()) {
        await h.ns.addVeth('eth0', { name: `port${i}`, netns: sw }, mtu);
        await sw.setMaster(`port${i}`, 'br0');
        await sw.setLinkUp(`port${i}`);
      }
    }
    for (const h of hosts) {
      await h.ns.addAddress('eth0', `${h.address}/24`);
      await h.ns.setLinkUp('eth0');
    }
    return {
      hosts,
      ...(sw ? { switch: sw } : {}),
      remove,
      [Symbol.asyncDispose]: remove,
    };
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}
