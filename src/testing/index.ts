/**
 * `podnet/testing`: throwaway namespaces and small topologies for a test
 * suite's own use. Every object is named uniquely and removed by
 * `remove()` / `await using`, so tests can run in parallel and leave
 * nothing behind; a topology whose runner was killed is removed by its
 * reaper (see reaper.ts). Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN).
 * @packageDocumentation
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { AggregatePodnetError, InvalidArgumentError, PodnetSystemError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';
import { namespacePath } from '../netns/namespace.js';
import {
  encodeNewAddr,
  encodeNewRoute,
  encodeSetInetConf,
  IPV4_DEVCONF,
} from '../netns/rtnl-write.js';
import type { NamespaceProcess, NamespaceSpawnOptions } from '../netns/spawn.js';
import { processIdentity } from '../process.js';
import { UserNamespace } from '../rootless/userns/userns.js';
import {
  type ImpairedEnd,
  type Impairment,
  type ImpairmentState,
  LinkImpairment,
} from './impair.js';
import {
  defaultRecordDir,
  deleteRecord,
  holdWatcher,
  sweepTopologies,
  writeRecord,
} from './reaper.js';

export type { Impairment, ImpairmentDirection, ImpairmentState } from './impair.js';
export {
  defaultRecordDir,
  sweepTopologies,
  type TopologySweepReport,
} from './reaper.js';

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

/** How a process run with {@link TopologyHost.exec} ended, and what it wrote. */
export interface ExecResult {
  /** Its exit code (null when a signal ended it). */
  code: number | null;
  /** The signal that ended it, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** One host of a topology: a namespace with `lo` up, numbered interfaces, and processes inside. */
export interface TestHost {
  /** The host's namespace. */
  ns: NetworkNamespace;
  /** Its first interface toward the others (`eth0`). */
  ifname: string;
  /** The IPv4 address of that interface. */
  address: string;
}

/** One end of a link: the host's interface and its addresses. */
export interface HostInterface {
  /** The interface's name in its host (eth0, eth1, ...). */
  ifname: string;
  /** Its IPv4 address. */
  address: string;
  /** Its IPv6 address (dual stack topologies only). */
  address6?: string;
  /** The link it belongs to (named topologies only). */
  link?: TopologyLink;
}

/**
 * A host of a topology. `spawn` and `exec` run commands inside its
 * namespace (through ns.spawn: no thread of this process changes namespace).
 */
export class TopologyHost implements TestHost {
  /** Its name (named topologies), or `host<N>`. */
  readonly name: string;
  readonly ns: NetworkNamespace;
  /** Its interfaces, in the order of the links (eth0 first). */
  readonly interfaces: HostInterface[] = [];

  /** @internal Made by createTopology. */
  constructor(name: string, ns: NetworkNamespace) {
    this.name = name;
    this.ns = ns;
  }

  get ifname(): string {
    return this.interfaces[0]?.ifname ?? 'eth0';
  }

  get address(): string {
    return this.interfaces[0]?.address ?? '';
  }

  /** Its IPv6 address on eth0 (dual stack topologies), else undefined. */
  get address6(): string | undefined {
    return this.interfaces[0]?.address6;
  }

  /** Starts a command in the host (argv only, as ns.spawn); killed when the topology is removed. */
  spawn(
    command: string,
    args?: readonly string[],
    options?: NamespaceSpawnOptions,
  ): NamespaceProcess {
    return this.ns.spawn(command, args, options);
  }

  /**
   * Runs a command in the host to completion and resolves to its exit code
   * and output (a non-zero exit resolves too: it is the caller's to judge).
   * Rejects only when it cannot be started (ENOENT, ...).
   */
  exec(
    command: string,
    args: readonly string[] = [],
    options: NamespaceSpawnOptions = {},
  ): Promise<ExecResult> {
    const child = this.ns.spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    return new Promise<ExecResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    });
  }

  /**
   * Sets a sysctl of the host's namespace (`net.ipv4.ip_forward`, 1), by
   * running sysctl(8) inside: /proc/sys/net shows the namespace of the
   * process reading it, and no thread of this one may enter another.
   */
  async sysctl(key: string, value: string | number): Promise<void> {
    if (!/^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/.test(key) || !/^[\w .:-]*$/.test(String(value)))
      throw new InvalidArgumentError(`not a sysctl setting: '${key}' = '${String(value)}'`);
    const r = await this.exec('sysctl', ['-q', '-w', `${key}=${String(value)}`]);
    if (r.code !== 0)
      throw new InvalidArgumentError(
        `sysctl ${key}=${String(value)} in host '${this.name}' failed: ${r.stderr.trim() || `exit ${String(r.code)}`}`,
      );
  }
}

/** A veth between two hosts of a named topology. */
export class TopologyLink {
  /** `A-B`, the names of the hosts it joins. */
  readonly name: string;
  /** Its two ends, in the order of `between`. */
  readonly ends: [
    { host: TopologyHost; iface: HostInterface },
    { host: TopologyHost; iface: HostInterface },
  ];
  /** Its IPv4 /24. */
  readonly subnet: string;
  /** Its IPv6 /64, when dual stack. */
  readonly subnet6: string | undefined;

  readonly #impairment: LinkImpairment;

  /** @internal Made by createTopology. */
  constructor(ends: TopologyLink['ends'], subnet: string, subnet6: string | undefined) {
    this.ends = ends;
    this.name = `${ends[0].host.name}-${ends[1].host.name}`;
    this.subnet = subnet;
    this.subnet6 = subnet6;
    const end = (e: TopologyLink['ends'][number]): ImpairedEnd => ({
      host: e.host.name,
      ns: e.host.ns,
      ifname: e.iface.ifname,
    });
    this.#impairment = new LinkImpairment(this.name, [end(ends[0]), end(ends[1])]);
  }

  /**
   * Impairs the link in both directions: each end delays, varies, drops
   * and rate-limits the packets it sends (so a 50 ms delay adds 100 ms to
   * a round trip). Each call sets the whole impairment (a field left out
   * is none); calling it again on an impaired link changes it in place,
   * with no moment of none. Bad input is an InvalidArgumentError, and a
   * failure half way leaves the link as it was.
   *
   * tc over netlink: a netem qdisc at the root of each end, replaced in
   * one request, where the kernel has netem. Where it has not
   * (CONFIG_NET_SCH_NETEM unset), a delay line per end: a clsact qdisc
   * whose egress filter (cls_bpf, one request to attach or remove) sends
   * the end's frames through a tap to a native thread of this process,
   * which holds, drops and paces them as netem would (FIFO: jitter never
   * reorders) and sends them on to the peer. That line lives in the
   * process that applied it: when the process exits, its taps go, and the
   * link carries nothing until the topology is removed (its reaper
   * removes the namespaces). The first request to an end with an
   * `ingress` qdisc is refused (it holds clsact's place).
   */
  impair(imp: Impairment): Promise<void> {
    return this.#impairment.apply(imp);
  }

  /**
   * Removes the impairment (the default qdisc, or no filter, again); a
   * link never impaired through this object is left as it is.
   */
  clear(): Promise<void> {
    return this.#impairment.clear();
  }

  /**
   * What is applied, by which mechanism, and the counters of each
   * direction since it was (undefined when the link is unimpaired).
   */
  impairment(): Promise<ImpairmentState | undefined> {
    return this.#impairment.state();
  }

  /** @internal Stops this process's delay lines before the topology's namespaces go. */
  release(): void {
    this.#impairment.release();
  }
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

function subnet6Prefix(subnet: string | undefined): string {
  if (subnet === undefined)
    return `fd00:${randomBytes(6)
      .toString('hex')
      .replace(/(.{4})(?!$)/g, '$1:')}`;
  const m = /^([0-9a-f]{1,4}(?::[0-9a-f]{1,4}){3})::\/64$/i.exec(subnet);
  if (!m)
    throw new InvalidArgumentError(
      `subnet6 must be an IPv6 /64 such as fd00:1:2:3::/64, not '${subnet}'`,
    );
  return m[1]!.toLowerCase();
}

const testName = (): string => `podnet-test-${randomBytes(6).toString('hex')}`;

/**
 * A throwaway namespace with `lo` up, uniquely named `podnet-test-<hex>`.
 * `await using ns = await tempNamespace()` removes it at the end of scope.
 */
export async function tempNamespace(
  opts: { dir?: string; name?: string } = {},
): Promise<NetworkNamespace> {
  const ns = await NetworkNamespace.create({ ...opts, name: opts.name ?? testName() });
  try {
    await ns.setLinkUp('lo');
    return ns;
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

// What every topology does around its build: sweep the dead, register,
// hold the watcher, and on failure or removal undo all of it.
class Registration {
  readonly made: NetworkNamespace[] = [];
  readonly names: string[];
  readonly #where: { dir?: string };
  #release: (() => Promise<void>) | undefined;
  record = '';

  constructor(count: number, where: { dir?: string }) {
    this.names = Array.from({ length: count }, testName);
    this.#where = where;
  }

  async start(recordDir: string): Promise<void> {
    await sweepTopologies({ dir: recordDir });
    this.record = await writeRecord(recordDir, randomBytes(8).toString('hex'), {
      version: 1,
      owner: processIdentity(process.pid),
      namespaces: this.names.map((name) => namespacePath(name, this.#where.dir)),
    });
    this.#release = holdWatcher(recordDir);
  }

  async namespace(): Promise<NetworkNamespace> {
    const ns = await tempNamespace({ ...this.#where, name: this.names[this.made.length]! });
    this.made.push(ns);
    return ns;
  }

  readonly remove = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const ns of this.made.splice(0).reverse())
      await ns.remove().catch((e: unknown) => errors.push(e));
    if (errors.length)
      throw new AggregatePodnetError('ERR_PODNET_TEARDOWN', 'removing a test topology', errors);
    if (this.record) await deleteRecord(this.record);
    await this.#release?.();
    this.#release = undefined;
  };
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

/** How long a topology waits for its links to be operationally up. */
const LINK_READY_MS = 10_000;

/**
 * Waits until every interface of `hosts` is operationally up. A veth gets
 * its carrier at once, but IFF_RUNNING (and with it IPv6's link-local
 * address and routes that are not `linkdown`) only when the kernel's
 * linkwatch runs, up to a second later on a busy machine: a topology is
 * handed over only once traffic can flow.
 */
async function linksReady(hosts: TopologyHost[]): Promise<void> {
  const deadline = Date.now() + LINK_READY_MS;
  for (const h of hosts) {
    for (const i of h.interfaces) {
      while ((await h.ns.link(i.ifname)).operstate !== 'up') {
        if (Date.now() > deadline)
          throw new PodnetSystemError(
            `waiting ${LINK_READY_MS} ms for ${i.ifname} of '${h.name}' to come up`,
            { errno: 110, syscall: 'RTM_GETLINK' },
          );
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
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
