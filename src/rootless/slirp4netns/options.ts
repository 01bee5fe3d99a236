import { isAbsolute } from 'node:path';
import ipaddr from 'ipaddr.js';
import { InvalidArgumentError } from '../../errors.js';
import type { Slirp4netnsFeatures } from './probe.js';

/** Who publishes a rootless container's ports. */
export type PortHandler = 'slirp4netns' | 'rootlesskit';

/**
 * slirp4netns settings, parsed from podman's `key=value` spelling by
 * {@link parseSlirp4netnsOptions}. Unset optional fields mean slirp4netns's
 * (or podman's) default.
 */
export interface Slirp4netnsOptions {
  /**
   * `slirp4netns`: ports are published through slirp4netns's API socket
   * (add_hostfwd); `rootlesskit` (podman's default): by podnet's own port
   * forwarder, which keeps the client's address.
   */
  portHandler: PortHandler;
  /** Let the namespace reach the host's 127.0.0.1 as 10.0.2.2 (default false, as podman). */
  allowHostLoopback: boolean;
  /** Give the namespace IPv6 (fd00::/64) too. */
  enableIpv6: boolean;
  /** The tap device's MTU (podman: 65520). */
  mtu?: number;
  /** The virtual network, IPv4 CIDR (slirp4netns: 10.0.2.0/24). */
  cidr?: string;
  /** Host IPv4 address, or interface name, that outbound connections are bound to. */
  outboundAddr?: string;
}

/** The MTU podman gives slirp4netns: large frames make the user-mode stack much faster. */
export const DEFAULT_SLIRP4NETNS_MTU = 65520;
/** The largest MTU slirp4netns accepts. */
const MAX_MTU = 65521;
/** The smallest IPv4 MTU (RFC 791). */
const MIN_MTU = 68;

function parseBool(option: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError(`slirp4netns option '${option}': expected true or false`);
}

function parseCidr(option: string, value: string): string {
  let prefix: number;
  try {
    const [addr, len] = ipaddr.parseCIDR(value);
    if (addr.kind() !== 'ipv4') throw new Error('not IPv4');
    prefix = len;
  } catch (cause) {
    throw new InvalidArgumentError(`slirp4netns option '${option}': not an IPv4 CIDR`, { cause });
  }
  // slirp4netns puts the guest at network+100, so it refuses anything smaller than a /25.
  if (prefix < 1 || prefix > 25) {
    throw new InvalidArgumentError(
      `slirp4netns option '${option}': the prefix length must be 1-25 (the guest is network+100)`,
    );
  }
  return value;
}

function parseOutboundAddr(option: string, value: string): string {
  if (ipaddr.IPv4.isValidFourPartDecimal(value)) return value;
  if (ipaddr.IPv6.isValid(value)) {
    throw new InvalidArgumentError(`slirp4netns option '${option}': must be an IPv4 address`);
  }
  // Otherwise it names an interface, which slirp4netns resolves itself.
  if (!/^[^\s/:]{1,15}$/.test(value)) {
    throw new InvalidArgumentError(
      `slirp4netns option '${option}': neither an IPv4 address nor an interface name`,
    );
  }
  return value;
}

function parseMtu(option: string, value: string): number {
  const mtu = /^\d{1,6}$/.test(value) ? Number(value) : Number.NaN;
  if (!(mtu >= MIN_MTU && mtu <= MAX_MTU)) {
    throw new InvalidArgumentError(
      `slirp4netns option '${option}': the MTU must be an integer from ${MIN_MTU} to ${MAX_MTU}`,
    );
  }
  return mtu;
}

/**
 * Parses slirp4netns options as podman spells them (`allow_host_loopback=true`,
 * `port_handler=slirp4netns`, `cidr=`, `enable_ipv6=`, `outbound_addr=`,
 * `mtu=`). A later option overrides an earlier one. Throws
 * InvalidArgumentError naming the option for an unknown key or a bad value.
 */
export function parseSlirp4netnsOptions(options: readonly string[] = []): Slirp4netnsOptions {
  const out: Slirp4netnsOptions = {
    portHandler: 'rootlesskit',
    allowHostLoopback: false,
    enableIpv6: false,
  };
  for (const option of options) {
    const eq = option.indexOf('=');
    const key = eq < 0 ? option : option.slice(0, eq);
    const value = eq < 0 ? '' : option.slice(eq + 1);
    switch (key) {
      case 'port_handler':
        if (value !== 'slirp4netns' && value !== 'rootlesskit') {
          throw new InvalidArgumentError(
            `slirp4netns option '${option}': expected port_handler=slirp4netns or port_handler=rootlesskit`,
          );
        }
        out.portHandler = value;
        break;
      case 'allow_host_loopback':
        out.allowHostLoopback = parseBool(option, value);
        break;
      case 'enable_ipv6':
        out.enableIpv6 = parseBool(option, value);
        break;
      case 'cidr':
        out.cidr = parseCidr(option, value);
        break;
      case 'outbound_addr':
        out.outboundAddr = parseOutboundAddr(option, value);
        break;
      case 'mtu':
        out.mtu = parseMtu(option, value);
        break;
      default:
        throw new InvalidArgumentError(`unknown slirp4netns option '${option}'`);
    }
  }
  return out;
}

/** The namespace slirp4netns attaches to: a mounted namespace file, or a process's. */
export type Slirp4netnsTarget = { netns: string } | { pid: number };

/** Everything {@link buildSlirp4netnsArgs} needs. */
export interface Slirp4netnsArgsInput {
  /** Parsed options. */
  options: Slirp4netnsOptions;
  /** What the binary supports (from probing it). */
  features: Slirp4netnsFeatures;
  /** Where to attach. */
  target: Slirp4netnsTarget;
  /** The API socket path, when ports are published through slirp4netns. */
  apiSocket?: string;
  /**
   * Whether slirp4netns runs in a mount namespace of its own whose unmounts
   * cannot reach the host (private propagation as root; inside an
   * unprivileged user namespace, by construction). Only then is
   * `--enable-sandbox` passed: the sandbox pivot_roots and detaches the old
   * root, and with shared propagation that unmount reaches the host's
   * namespace mounts (podman starts it with CLONE_NEWNS for the same reason).
   */
  privateMountNamespace: boolean;
}

/** The exit fd slirp4netns gets: it exits when the other end closes. */
export const SLIRP4NETNS_EXIT_FD = 3;
/** The ready fd slirp4netns writes to once the tap device is configured. */
export const SLIRP4NETNS_READY_FD = 4;
/** The tap device slirp4netns creates in the namespace. */
export const SLIRP4NETNS_TAP = 'tap0';

function unsupported(features: Slirp4netnsFeatures, flag: string, why: string): never {
  throw new InvalidArgumentError(
    `slirp4netns ${features.version} does not support ${flag}, needed for ${why}`,
  );
}

/**
 * The slirp4netns argv (without the binary) as podman builds it:
 * `--disable-host-loopback` unless allowed, `--mtu 65520`, the sandbox and
 * seccomp when supported, the optional settings, `--api-socket` for the
 * slirp4netns port handler, `-c -e 3 -r 4`, then `--netns-type=path PATH tap0`
 * or `PID tap0`. Throws InvalidArgumentError when an option needs a flag the
 * binary lacks, rather than silently dropping it.
 */
export function buildSlirp4netnsArgs(input: Slirp4netnsArgsInput): string[] {
  const { options, features, target } = input;
  const args: string[] = [];
  if (!options.allowHostLoopback) {
    // Older slirp4netns always allowed the host's loopback: refuse rather than expose it.
    if (!features.disableHostLoopback) {
      unsupported(features, '--disable-host-loopback', 'allow_host_loopback=false');
    }
    args.push('--disable-host-loopback');
  }
  if (options.mtu !== undefined) {
    if (!features.mtu) unsupported(features, '--mtu', `mtu=${options.mtu}`);
    args.push('--mtu', String(options.mtu));
  } else if (features.mtu) {
    args.push('--mtu', String(DEFAULT_SLIRP4NETNS_MTU));
  }
  if (features.enableSandbox && input.privateMountNamespace) args.push('--enable-sandbox');
  if (features.enableSeccomp) args.push('--enable-seccomp');
  if (options.cidr !== undefined) {
    if (!features.cidr) unsupported(features, '--cidr', `cidr=${options.cidr}`);
    args.push('--cidr', options.cidr);
  }
  if (options.enableIpv6) {
    if (!features.enableIpv6) unsupported(features, '--enable-ipv6', 'enable_ipv6=true');
    args.push('--enable-ipv6');
  }
  if (options.outboundAddr !== undefined) {
    if (!features.outboundAddr) {
      unsupported(features, '--outbound-addr', `outbound_addr=${options.outboundAddr}`);
    }
    args.push('--outbound-addr', options.outboundAddr);
  }
  if (input.apiSocket !== undefined) {
    if (!features.apiSocket) unsupported(features, '--api-socket', 'port_handler=slirp4netns');
    args.push('--api-socket', input.apiSocket);
  }
  args.push('-c', '-e', String(SLIRP4NETNS_EXIT_FD), '-r', String(SLIRP4NETNS_READY_FD));
  if ('netns' in target) {
    if (!isAbsolute(target.netns) || target.netns.includes('\0')) {
      throw new InvalidArgumentError(
        `slirp4netns target '${target.netns}' is not an absolute path`,
      );
    }
    if (!features.netnsType) unsupported(features, '--netns-type', 'a namespace path');
    args.push('--netns-type=path', target.netns, SLIRP4NETNS_TAP);
  } else {
    if (!Number.isSafeInteger(target.pid) || target.pid <= 0) {
      throw new InvalidArgumentError(`slirp4netns target pid ${target.pid} is not a process id`);
    }
    args.push(String(target.pid), SLIRP4NETNS_TAP);
  }
  return args;
}
