// The parts of every topology: hosts (a namespace and its interfaces),
// the veths between them and their impairment, the numbering of their
// subnets, and the wait for their links to come up. createTopology and
// createCluster both build from these.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, PodnetSystemError } from '../errors.js';
import type { NetworkNamespace } from '../netns/index.js';
import {
  encodeDelRootQdisc,
  encodeNetemQdisc,
  type NetemRequest,
  pschedTicksPerUs,
} from '../netns/rtnl-write.js';
import type { NamespaceProcess, NamespaceSpawnOptions } from '../netns/spawn.js';

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

/** Delay, jitter, loss and rate a link imposes on its packets (netem); see {@link TopologyLink.impair}. */
export interface Impairment {
  /** Added delay in each direction, in milliseconds. */
  delay?: number;
  /** Random variation of that delay (+/-), in milliseconds. */
  jitter?: number;
  /** Share of packets dropped in each direction, in percent (0 to 100). */
  loss?: number;
  /** Rate limit in each direction, in bits per second. */
  rate?: number;
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

let ticksPerUs: number | undefined;
function pschedTicks(): number {
  ticksPerUs ??= pschedTicksPerUs(readFileSync('/proc/net/psched', 'utf8'));
  if (ticksPerUs === undefined)
    throw new InvalidArgumentError('/proc/net/psched is not what the kernel writes there');
  return ticksPerUs;
}

function checkImpairment(imp: Impairment): NetemRequest {
  const num = (v: unknown, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max)
      throw new InvalidArgumentError(
        `impairment ${name} must be a number from 0 to ${max}, not ${String(v)}`,
      );
    return v;
  };
  const delay = num(imp.delay, 'delay (ms)', 3_600_000);
  const jitter = num(imp.jitter, 'jitter (ms)', 3_600_000);
  const loss = num(imp.loss, 'loss (%)', 100);
  const rate = num(imp.rate, 'rate (bit/s)', 8 * 2 ** 40);
  return {
    ...(delay === undefined ? {} : { delayUs: delay * 1000 }),
    ...(jitter === undefined ? {} : { jitterUs: jitter * 1000 }),
    ...(loss === undefined ? {} : { lossPercent: loss }),
    ...(rate === undefined ? {} : { rateBytes: Math.max(1, Math.round(rate / 8)) }),
  };
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

  /** @internal Made by createTopology. */
  constructor(ends: TopologyLink['ends'], subnet: string, subnet6: string | undefined) {
    this.ends = ends;
    this.name = `${ends[0].host.name}-${ends[1].host.name}`;
    this.subnet = subnet;
    this.subnet6 = subnet6;
  }

  /**
   * Impairs the link in both directions with a netem qdisc at the root of
   * each end (so a 50 ms delay adds 100 ms to a round trip). Each end's
   * qdisc is replaced in one request: calling it again changes the
   * impairment without a moment of none. A kernel without netem
   * (CONFIG_NET_SCH_NETEM) fails with ENOENT, and the link is unchanged.
   */
  async impair(imp: Impairment): Promise<void> {
    const req = checkImpairment(imp);
    const ticks = pschedTicks();
    const done: (typeof this.ends)[number][] = [];
    try {
      for (const end of this.ends) {
        const { index } = await end.host.ns.link(end.iface.ifname);
        end.host.ns.rtnlAckSync(
          `impairing ${end.iface.ifname} of '${end.host.name}'`,
          encodeNetemQdisc(index, req, ticks),
        );
        done.push(end);
      }
    } catch (err) {
      for (const end of done) await this.#clearEnd(end).catch(() => undefined);
      if ((err as { code?: string }).code === 'ENOENT')
        throw new PodnetSystemError(
          `impairing link ${this.name}: the kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)`,
          { errno: 2, syscall: 'RTM_NEWQDISC' },
          { cause: err },
        );
      throw err;
    }
  }

  /** Removes the impairment (the default qdisc comes back); a link without one is left as it is. */
  async clear(): Promise<void> {
    for (const end of this.ends) await this.#clearEnd(end);
  }

  async #clearEnd(end: (typeof this.ends)[number]): Promise<void> {
    const { index } = await end.host.ns.link(end.iface.ifname);
    try {
      end.host.ns.rtnlAckSync(
        `clearing ${end.iface.ifname} of '${end.host.name}'`,
        encodeDelRootQdisc(index),
      );
    } catch (err) {
      // The default root qdisc cannot be deleted: EINVAL (or ENOENT) means none of ours is there.
      const code = (err as { code?: string }).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
    }
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
