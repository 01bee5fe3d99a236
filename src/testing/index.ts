/**
 * `podnet/testing`: throwaway namespaces and small topologies for a test
 * suite's own use. Every object is named uniquely and removed by
 * `remove()` / `await using`, so tests can run in parallel and leave
 * nothing behind; a topology whose runner was killed is removed by its
 * reaper (see reaper.ts). Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
 * @packageDocumentation
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, PodnetSystemError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import {
  encodeNewAddr,
  encodeNewRoute,
  encodeSetInetConf,
  IPV4_DEVCONF,
} from '../netns/rtnl-write.js';
import { UserNamespace } from '../rootless/userns/userns.js';
import {
  type HostInterface,
  LINK_READY_MS,
  linksReady,
  subnet6Prefix,
  subnetPrefix,
  TopologyHost,
  TopologyLink,
} from './host.js';
import { defaultRecordDir } from './reaper.js';
import { Registration } from './registration.js';

export {
  type Cluster,
  type ClusterBackend,
  ClusterNode,
  type ClusterOptions,
  type ClusterPlugin,
  ClusterPod,
  createCluster,
  type NodeCniPlan,
  type PartitionState,
  type PodOptions,
} from './cluster.js';
export {
  type ExecResult,
  type HostInterface,
  type TestHost,
  TopologyHost,
  TopologyLink,
} from './host.js';
export type { Impairment, ImpairmentDirection, ImpairmentState } from './impair.js';
export {
  defaultRecordDir,
  sweepTopologies,
  type TopologySweepReport,
} from './reaper.js';
export { tempNamespace } from './registration.js';

/** Options of {@link createTopology} for hosts counted rather than named (version 1). */
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
  /** Where the topology is registered for its reaper (default {@link defaultRecordDir}). */
  recordDir?: string;
}

/** One link of a named topology: a veth between two hosts, numbered in its subnets. */
export interface LinkSpec {
  /** The two hosts it joins; the first gets .1 (::1), the second .2 (::2). */
  between: [string, string];
  /** Its IPv4 /24 (default a random 10.231.X.0/24). */
  subnet?: string;
  /** Its IPv6 /64 (default a random fd00:... /64 when the topology is dual stack). */
  subnet6?: string;
  /** MTU of both ends (default the kernel's, 1500). */
  mtu?: number;
}

/** Options of {@link createTopology} for named hosts, links and routers (version 2). */
export interface NamedTopologyOptions {
  /** Host names: a lowercase letter, then up to 14 letters, digits or '-'. */
  hosts: string[];
  /** Veths between hosts; a host's interfaces are eth0, eth1, ... in this order. */
  links: LinkSpec[];
  /**
   * Hosts that forward between their links. Every other host gets routes to
   * the subnets it is not on through the nearest router, so all reach all.
   */
  routers?: string[];
  /** Number every link in IPv6 too (addresses without DAD: usable at once). */
  dualStack?: boolean;
  /** sysctls per host, set before its links are made: `{ a: { 'net.ipv4.tcp_ecn': 1 } }`. */
  sysctls?: Record<string, Record<string, string | number>>;
  /** Namespace directory (default as NetworkNamespace.create). */
  dir?: string;
  /** Where the topology is registered for its reaper (default {@link defaultRecordDir}). */
  recordDir?: string;
  /**
   * Build it as an unprivileged user can: the hosts are network namespaces
   * of one new user namespace (see {@link UserNamespace}), not mounted, so
   * `dir` and `recordDir` do not apply. The helpers' processes end with
   * this one, and the kernel then frees everything.
   */
  userns?: boolean;
}

/** Hosts joined by veths or a bridge. Remove it (or `await using`) to delete everything. */
export interface Topology extends AsyncDisposable {
  /** The hosts, numbered from .1. */
  hosts: TopologyHost[];
  /** The switch namespace holding the bridge (bridge topologies only). */
  switch?: NetworkNamespace;
  /** The record its reaper reads (removed with the topology); '' for a `userns` topology, which has none. */
  record: string;
  /** Removes every namespace of the topology (their links go with them). */
  remove(): Promise<void>;
}

/** A topology of named hosts, links and routers. */
export interface NamedTopology extends Topology {
  /** Its links, in the order given. */
  links: TopologyLink[];
  /** The host of that name (throws InvalidArgumentError for another). */
  host(name: string): TopologyHost;
  /** The link between two hosts (either order). */
  link(a: string, b: string): TopologyLink;
}

/**
 * The hosts of an unprivileged user's topology: network namespaces of one
 * user namespace, each held by a UserNamespace helper. The first helper
 * creates both namespaces; each further host is a process started inside
 * the first (so in its user namespace, where this user is root) that
 * unshares a network namespace of its own, which a second helper then
 * joins. No namespace is mounted and nothing is registered: every helper
 * ends when its socket to this process closes, so the kernel frees the
 * whole topology the moment its runner dies, SIGKILL included.
 */
class UserHosts {
  readonly helpers: UserNamespace[] = [];

  async namespace(): Promise<NetworkNamespace> {
    const first = this.helpers[0];
    let u: UserNamespace;
    if (!first) {
      u = await UserNamespace.create();
    } else {
      const holder = first.netns.spawn('unshare', ['--net', '--', 'sleep', '60'], {
        stdio: 'ignore',
      });
      try {
        // unshare has made the namespace once the process is sleep.
        const deadline = Date.now() + LINK_READY_MS;
        const comm = (): string => {
          try {
            return readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim();
          } catch {
            return '';
          }
        };
        while (comm() !== 'sleep') {
          if (holder.exitCode !== null || Date.now() > deadline)
            throw new PodnetSystemError('making a network namespace in the user namespace', {
              errno: 110,
              syscall: 'unshare',
            });
          await new Promise((r) => setTimeout(r, 10));
        }
        u = await UserNamespace.join(holder.pid!);
      } finally {
        holder.kill('SIGKILL');
      }
    }
    this.helpers.push(u);
    await u.netns.setLinkUp('lo');
    return u.netns;
  }

  readonly remove = async (): Promise<void> => {
    for (const u of this.helpers.splice(0).reverse()) await u.close();
  };
}

function hostList(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 64)
    throw new InvalidArgumentError('hosts must name 1 to 64 hosts');
  for (const h of v)
    if (typeof h !== 'string' || !/^[a-z][a-z0-9-]{0,14}$/.test(h))
      throw new InvalidArgumentError(
        `a host name is a lowercase letter, then up to 14 of a-z, 0-9, '-', not '${String(h)}'`,
      );
  if (new Set(v).size !== v.length) throw new InvalidArgumentError('host names must differ');
  return v as string[];
}

// What one link will be, checked before anything is made.
interface LinkPlan {
  spec: LinkSpec;
  a: number;
  b: number;
  prefix: string;
  prefix6: string | undefined;
}

function planLinks(opts: NamedTopologyOptions, names: string[]): LinkPlan[] {
  if (!Array.isArray(opts.links)) throw new InvalidArgumentError('links must be an array');
  const seen = new Set<string>();
  return opts.links.map((spec) => {
    const [x, y] = Array.isArray(spec?.between) ? spec.between : [];
    const a = names.indexOf(String(x));
    const b = names.indexOf(String(y));
    if (spec?.between?.length !== 2 || a < 0 || b < 0 || a === b)
      throw new InvalidArgumentError(
        `a link is between two different hosts of the topology, not ${JSON.stringify(spec?.between)}`,
      );
    const prefix = subnetPrefix(spec.subnet);
    if (seen.has(prefix))
      throw new InvalidArgumentError(`two links share the subnet ${prefix}.0/24`);
    seen.add(prefix);
    const prefix6 =
      opts.dualStack || spec.subnet6 !== undefined ? subnet6Prefix(spec.subnet6) : undefined;
    return { spec, a, b, prefix, prefix6 };
  });
}

/**
 * Routes for `from` to every subnet it is not on: breadth first through
 * the links, passing only through routers, the first hop's address on
 * the shared link as the gateway.
 */
function routesOf(
  from: TopologyHost,
  routers: Set<TopologyHost>,
): { dst: string; gateway: string; ifname: string }[] {
  const out: { dst: string; gateway: string; ifname: string }[] = [];
  // Each reached host with the interface and gateway of the first hop toward it.
  const queue: { host: TopologyHost; via: HostInterface; gw: HostInterface }[] = [];
  const reached = new Set<TopologyHost>([from]);
  for (const iface of from.interfaces) {
    const far = iface.link!.ends.find((e) => e.host !== from)!;
    if (!reached.has(far.host)) {
      reached.add(far.host);
      queue.push({ host: far.host, via: iface, gw: far.iface });
    }
  }
  const routed = new Set(from.interfaces.map((i) => i.link!));
  while (queue.length) {
    const { host, via, gw } = queue.shift()!;
    if (!routers.has(host)) continue;
    for (const iface of host.interfaces) {
      const link = iface.link!;
      if (!routed.has(link)) {
        routed.add(link);
        out.push({ dst: link.subnet, gateway: gw.address, ifname: via.ifname });
        if (link.subnet6 && gw.address6)
          out.push({ dst: link.subnet6, gateway: gw.address6, ifname: via.ifname });
      }
      const far = link.ends.find((e) => e.host !== host)!;
      if (!reached.has(far.host)) {
        reached.add(far.host);
        queue.push({ host: far.host, via, gw });
      }
    }
  }
  return out;
}

async function createNamed(opts: NamedTopologyOptions): Promise<NamedTopology> {
  const names = hostList(opts.hosts);
  const plans = planLinks(opts, names);
  const routerNames = opts.routers ?? [];
  for (const r of routerNames)
    if (!names.includes(r))
      throw new InvalidArgumentError(`router '${String(r)}' is not a host of the topology`);
  const sysctls = Object.entries(opts.sysctls ?? {});
  for (const [h] of sysctls)
    if (!names.includes(h))
      throw new InvalidArgumentError(`sysctls for '${h}', which is not a host of the topology`);
  const reg = opts.userns
    ? new UserHosts()
    : new Registration(names.length, opts.dir === undefined ? {} : { dir: opts.dir });
  if (reg instanceof Registration) await reg.start(opts.recordDir ?? defaultRecordDir());
  try {
    const hosts: TopologyHost[] = [];
    for (const name of names) hosts.push(new TopologyHost(name, await reg.namespace()));
    const routers = new Set(routerNames.map((r) => hosts[names.indexOf(r)]!));
    // Before any link exists, so no interface ever sees these change. IPv6
    // has no netlink switch for them (IFLA_INET6_CONF is read-only): sysctl.
    if (plans.some((p) => p.prefix6)) {
      // No DAD on the link-local addresses either: while those are
      // tentative (a second or more), neighbour discovery through a router
      // was seen to fail.
      for (const h of hosts) await h.sysctl('net.ipv6.conf.default.accept_dad', 0);
      for (const r of routers) await r.sysctl('net.ipv6.conf.all.forwarding', 1);
    }
    for (const [h, kv] of sysctls)
      for (const [k, v] of Object.entries(kv)) await hosts[names.indexOf(h)]!.sysctl(k, v);
    const links: TopologyLink[] = [];
    for (const p of plans) {
      const [ha, hb] = [hosts[p.a]!, hosts[p.b]!];
      const ia: HostInterface = { ifname: `eth${ha.interfaces.length}`, address: `${p.prefix}.1` };
      const ib: HostInterface = { ifname: `eth${hb.interfaces.length}`, address: `${p.prefix}.2` };
      if (p.prefix6) {
        ia.address6 = `${p.prefix6}::1`;
        ib.address6 = `${p.prefix6}::2`;
      }
      await ha.ns.addVeth(
        ia.ifname,
        { name: ib.ifname, netns: hb.ns },
        p.spec.mtu === undefined ? {} : { mtu: p.spec.mtu },
      );
      const link = new TopologyLink(
        [
          { host: ha, iface: ia },
          { host: hb, iface: ib },
        ],
        `${p.prefix}.0/24`,
        p.prefix6 && `${p.prefix6}::/64`,
      );
      ia.link = link;
      ib.link = link;
      ha.interfaces.push(ia);
      hb.interfaces.push(ib);
      links.push(link);
      for (const [h, i] of [
        [ha, ia],
        [hb, ib],
      ] as const) {
        const { index } = await h.ns.link(i.ifname);
        h.ns.rtnlAckSync(
          `adding ${i.address} to ${h.name}`,
          encodeNewAddr(index, `${i.address}/24`),
        );
        if (i.address6)
          h.ns.rtnlAckSync(
            `adding ${i.address6} to ${h.name}`,
            encodeNewAddr(index, `${i.address6}/64`, { noDad: true }),
          );
        // A router forwards IPv4 per input device: net.ipv4.conf.IF.forwarding, over netlink.
        const forward = routerNames.includes(h.name);
        h.ns.rtnlAckSync(
          `setting ${i.ifname} of ${h.name} up`,
          encodeSetInetConf(index, forward ? [[IPV4_DEVCONF.FORWARDING, 1]] : [], { up: true }),
        );
      }
    }
    await linksReady(hosts);
    for (const h of hosts) {
      for (const r of routesOf(h, routers)) {
        const { index } = await h.ns.link(r.ifname);
        h.ns.rtnlAckSync(
          `routing ${r.dst} in ${h.name}`,
          encodeNewRoute({ dst: r.dst, gateway: r.gateway, ifindex: index }),
        );
      }
    }
    // A delay line's tap holds its namespace: the lines stop before the namespaces go.
    const remove = async (): Promise<void> => {
      for (const l of links) l.release();
      await reg.remove();
    };
    const host = (name: string): TopologyHost => {
      const h = hosts[names.indexOf(name)];
      if (!h) throw new InvalidArgumentError(`no host '${name}' in the topology`);
      return h;
    };
    return {
      hosts,
      links,
      record: reg instanceof Registration ? reg.record : '',
      host,
      link: (a, b) => {
        const l = links.find(
          (x) =>
            (x.ends[0].host.name === a && x.ends[1].host.name === b) ||
            (x.ends[0].host.name === b && x.ends[1].host.name === a),
        );
        if (!l) throw new InvalidArgumentError(`no link between '${a}' and '${b}'`);
        return l;
      },
      remove,
      [Symbol.asyncDispose]: remove,
    };
  } catch (err) {
    await reg.remove().catch(() => undefined);
    throw err;
  }
}

/**
 * Builds a topology: named hosts joined by veths and routers
 * (`{ hosts: ['a', 'r', 'b'], links: [...], routers: ['r'] }`), or, given
 * a number of hosts, hosts joined by one veth (two) or a bridge (up to
 * 253). It is registered for the reaper first, so a runner killed half way
 * leaves nothing either; a failure half way removes whatever was made.
 * Each call first sweeps away the topologies of runners that died.
 */
export async function createTopology(opts: NamedTopologyOptions): Promise<NamedTopology>;
export async function createTopology(opts?: TopologyOptions): Promise<Topology>;
export async function createTopology(
  opts: TopologyOptions | NamedTopologyOptions = {},
): Promise<Topology> {
  if (Array.isArray(opts.hosts)) return createNamed(opts as NamedTopologyOptions);
  const o = opts as TopologyOptions;
  const count = o.hosts ?? 2;
  if (!Number.isInteger(count) || count < 1 || count > 253) {
    throw new InvalidArgumentError(`hosts must be an integer from 1 to 253, not ${count}`);
  }
  const link = o.link ?? (count === 2 ? 'pair' : 'bridge');
  if (link === 'pair' && count !== 2)
    throw new InvalidArgumentError("link 'pair' joins exactly two hosts");
  const prefix = subnetPrefix(o.subnet);
  const mtu = o.mtu === undefined ? {} : { mtu: o.mtu };
  const reg = new Registration(
    count + (link === 'bridge' ? 1 : 0),
    o.dir === undefined ? {} : { dir: o.dir },
  );
  await reg.start(o.recordDir ?? defaultRecordDir());
  try {
    const hosts: TopologyHost[] = [];
    for (let i = 0; i < count; i++) {
      const h = new TopologyHost(`host${i + 1}`, await reg.namespace());
      h.interfaces.push({ ifname: 'eth0', address: `${prefix}.${i + 1}` });
      hosts.push(h);
    }
    let sw: NetworkNamespace | undefined;
    if (link === 'pair') {
      const [a, b] = hosts as [TopologyHost, TopologyHost];
      await a.ns.addVeth('eth0', { name: 'eth0', netns: b.ns }, mtu);
    } else {
      sw = await reg.namespace();
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
      record: reg.record,
      remove: reg.remove,
      [Symbol.asyncDispose]: reg.remove,
    };
  } catch (err) {
    await reg.remove().catch(() => undefined);
    throw err;
  }
}
