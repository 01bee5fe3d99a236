// The parts of every topology: hosts (a namespace and its interfaces),
// the veths between them and their impairment (impair.ts does it), the numbering of their
// subnets, and the wait for their links to come up. createTopology and
// createCluster both build from these.
import { randomBytes } from 'node:crypto';
import { InvalidArgumentError, PodnetSystemError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import type { NamespaceProcess, NamespaceSpawnOptions } from '../netns/spawn.js';
import {
  type ImpairedEnd,
  type Impairment,
  type ImpairmentState,
  LinkImpairment,
} from './impair.js';

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
   * Rejects only when it cannot be started (ENOENT, ...). `input`, when
   * given, is written to its stdin (which is otherwise /dev/null).
   */
  exec(
    command: string,
    args: readonly string[] = [],
    options: NamespaceSpawnOptions & { input?: string } = {},
  ): Promise<ExecResult> {
    const { input, ...spawnOptions } = options;
    const child = this.ns.spawn(command, args, {
      ...spawnOptions,
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    if (input !== undefined) {
      // A command that exits without reading all of it is judged by its exit status.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(input);
    }
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

/** The first three octets of an IPv4 /24 (a random 10.231.X.0/24 when not given). */
export function subnetPrefix(subnet: string | undefined): string {
  if (subnet === undefined) return `10.231.${randomBytes(1)[0]}`;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) {
    throw new InvalidArgumentError(
      `subnet must be an IPv4 /24 such as 10.231.7.0/24, not '${subnet}'`,
    );
  }
  return `${m[1]}.${m[2]}.${m[3]}`;
}

/** The first four groups of an IPv6 /64 (a random fd00:... when not given). */
export function subnet6Prefix(subnet: string | undefined): string {
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

/** How long a topology waits for its links to be operationally up. */
export const LINK_READY_MS = 10_000;

/**
 * Waits until every interface of `hosts` is operationally up. A veth gets
 * its carrier at once, but IFF_RUNNING (and with it IPv6's link-local
 * address and routes that are not `linkdown`) only when the kernel's
 * linkwatch runs, up to a second later on a busy machine: a topology is
 * handed over only once traffic can flow.
 */
export async function linksReady(hosts: TopologyHost[]): Promise<void> {
  await interfacesReady(
    hosts.flatMap((h) => h.interfaces.map((i) => ({ host: h, ifname: i.ifname }))),
  );
}

/** The same for single interfaces of hosts (a pod's veth, whose host end is not its node's own). */
export async function interfacesReady(
  ends: readonly { host: TopologyHost; ifname: string }[],
): Promise<void> {
  const deadline = Date.now() + LINK_READY_MS;
  for (const { host, ifname } of ends) {
    while ((await host.ns.link(ifname)).operstate !== 'up') {
      if (Date.now() > deadline)
        throw new PodnetSystemError(
          `waiting ${LINK_READY_MS} ms for ${ifname} of '${host.name}' to come up`,
          { errno: 110, syscall: 'RTM_GETLINK' },
        );
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
