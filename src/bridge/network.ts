// Which networks the native driver serves, and what it reads from them: a
// config list of the shape podman's CNI backend writes and the embedded
// default network has (bridge with host-local IPAM, then any of portmap,
// firewall and tuning). Anything the plugins would do that this driver
// does not (a VLAN, a tuning sysctl, another IPAM) makes the list
// unsupported, with the reason, so such a list stays on the plugins rather
// than being served halfway.
import ipaddr from 'ipaddr.js';
import type { CniNetworkList } from '../cni/index.js';
import { PodnetError } from '../errors.js';

/** One host-local range: a subnet and, optionally, its first and last address and gateway. */
export interface BridgeRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway: string;
}

/** A route the container gets: destination CIDR, and a gateway unless it is the range's. */
export interface BridgeRoute {
  dst: string;
  gw?: string;
}

/** What the native driver reads from a bridge network's config list. */
export interface BridgeNetwork {
  /** The network (list) name: the IPAM directory's name too. */
  name: string;
  /** The bridge link's name. */
  bridge: string;
  /** The gateway addresses go on the bridge. */
  isGateway: boolean;
  /** Outbound traffic from the network's subnets is masqueraded. */
  ipMasq: boolean;
  /** Bridge ports in hairpin mode. */
  hairpin: boolean;
  /** MTU of the bridge and the veths (absent: the kernel's). */
  mtu?: number;
  /** host-local range sets: one address from each. */
  ranges: BridgeRange[][];
  /** Routes in the container. */
  routes: BridgeRoute[];
  /** host-local's data directory (its `dataDir`, default /var/lib/cni/networks). */
  dataDir: string;
  /** portmap is in the chain: published ports are served. */
  portmap: boolean;
  /** The chain takes a static MAC (tuning's `mac` capability). */
  macCapability: boolean;
}

/** A network the native driver was asked to serve but cannot: the config names what it lacks. */
export class DriverUnsupportedError extends PodnetError {
  /** The network. */
  readonly network: string;

  constructor(network: string, reason: string) {
    super(
      'ERR_PODNET_DRIVER_UNSUPPORTED',
      `the native driver cannot serve network '${network}': ${reason} (use driver 'cni')`,
    );
    this.network = network;
  }
}

/** Default data directory of host-local. */
export const HOST_LOCAL_DATA_DIR = '/var/lib/cni/networks';

// Options each plugin may carry that this driver either honours or that
// change nothing it does; any other key makes the list unsupported.
const COMMON = ['type', 'name', 'cniVersion', 'capabilities', 'runtimeConfig', 'args'];
const BRIDGE_KEYS = new Set([
  ...COMMON,
  'bridge',
  'isGateway',
  'isDefaultGateway',
  'ipMasq',
  'hairpinMode',
  'mtu',
  'ipam',
  'forceAddress',
  'promiscMode',
]);
const IPAM_KEYS = new Set([
  'type',
  'subnet',
  'rangeStart',
  'rangeEnd',
  'gateway',
  'ranges',
  'routes',
  'dataDir',
]);
const OTHER_KEYS: Record<string, Set<string>> = {
  portmap: new Set([...COMMON, 'snat', 'backend']),
  firewall: new Set([...COMMON, 'backend', 'ingressPolicy']),
  tuning: new Set(COMMON),
};

type Raw = Readonly<Record<string, unknown>>;

function isRecord(v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The range's gateway as host-local picks it: the given one, or the subnet's first address. */
function defaultGateway(subnet: string): string {
  const [net] = ipaddr.parseCIDR(subnet);
  const bytes = net.toByteArray();
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) + 1;
  return ipaddr.fromByteArray(bytes).toString();
}

function parseRange(r: Raw, where: string): BridgeRange | string {
  const subnet = str(r['subnet']);
  if (!subnet || !ipaddr.isValidCIDR(subnet)) return `${where} has no valid subnet`;
  // host-local takes the subnet's network address whatever host bits are set.
  const prefix = ipaddr.parseCIDR(subnet)[1];
  const base = subnet.includes(':')
    ? ipaddr.IPv6.networkAddressFromCIDR(subnet)
    : ipaddr.IPv4.networkAddressFromCIDR(subnet);
  const network = `${base.toString()}/${prefix}`;
  const out: BridgeRange = {
    subnet: network,
    gateway: str(r['gateway']) ?? defaultGateway(network),
  };
  for (const key of ['rangeStart', 'rangeEnd'] as const) {
    const v = str(r[key]);
    if (v !== undefined) {
      if (!ipaddr.isValid(v)) return `${where}'s ${key} '${v}' is not an address`;
      out[key] = v;
    }
  }
  if (!ipaddr.isValid(out.gateway)) return `${where}'s gateway '${out.gateway}' is not an address`;
  return out;
}

/**
 * The native driver's view of a config list, or why it cannot serve it.
 * Pure: reads nothing but the list.
 */
export function bridgeNetworkOf(list: CniNetworkList): BridgeNetwork | { unsupported: string } {
  const [first, ...rest] = list.plugins;
  if (first?.type !== 'bridge') return { unsupported: 'its first plugin is not bridge' };
  const c = first.config;
  const unknown = Object.keys(c).filter((k) => !BRIDGE_KEYS.has(k));
  if (unknown.length) return { unsupported: `bridge option ${unknown.join(', ')}` };
  if (c['promiscMode'] === true) return { unsupported: 'bridge option promiscMode' };
  const ipam = c['ipam'];
  if (!isRecord(ipam) || ipam['type'] !== 'host-local')
    return { unsupported: 'its IPAM is not host-local' };
  const badIpam = Object.keys(ipam).filter((k) => !IPAM_KEYS.has(k));
  if (badIpam.length) return { unsupported: `host-local option ${badIpam.join(', ')}` };

  const ranges: BridgeRange[][] = [];
  if (Array.isArray(ipam['ranges'])) {
    for (const [i, set] of ipam['ranges'].entries()) {
      if (!Array.isArray(set) || set.length === 0)
        return { unsupported: `range set ${i} is empty` };
      const parsed: BridgeRange[] = [];
      for (const [j, r] of set.entries()) {
        const range = isRecord(r)
          ? parseRange(r, `range ${i}.${j}`)
          : `range ${i}.${j} is not an object`;
        if (typeof range === 'string') return { unsupported: range };
        parsed.push(range);
      }
      ranges.push(parsed);
    }
  } else if (ipam['subnet'] !== undefined) {
    const range = parseRange(ipam, 'the IPAM');
    if (typeof range === 'string') return { unsupported: range };
    ranges.push([range]);
  }
  if (ranges.length === 0) return { unsupported: 'its IPAM has no range' };

  const routes: BridgeRoute[] = [];
  if (Array.isArray(ipam['routes'])) {
    for (const r of ipam['routes']) {
      const dst = isRecord(r) ? str(r['dst']) : undefined;
      if (!dst || !ipaddr.isValidCIDR(dst)) return { unsupported: 'a route has no valid dst' };
      const gw = isRecord(r) ? str(r['gw']) : undefined;
      if (gw !== undefined && !ipaddr.isValid(gw)) return { unsupported: `route gateway '${gw}'` };
      routes.push(gw === undefined ? { dst } : { dst, gw });
    }
  }
  // isDefaultGateway implies isGateway and a default route per family.
  const isDefaultGateway = c['isDefaultGateway'] === true;
  if (isDefaultGateway) {
    for (const set of ranges) {
      const v6 = set[0]!.subnet.includes(':');
      const dst = v6 ? '::/0' : '0.0.0.0/0';
      if (!routes.some((r) => r.dst === dst)) routes.push({ dst });
    }
  }

  for (const p of rest) {
    const keys = OTHER_KEYS[p.type];
    if (!keys) return { unsupported: `plugin ${p.type}` };
    const extra = Object.keys(p.config).filter((k) => !keys.has(k));
    if (extra.length) return { unsupported: `${p.type} option ${extra.join(', ')}` };
    if (
      p.type === 'firewall' &&
      p.config['ingressPolicy'] !== undefined &&
      p.config['ingressPolicy'] !== 'open'
    )
      return { unsupported: `firewall ingressPolicy ${String(p.config['ingressPolicy'])}` };
  }
  const mtu = c['mtu'];
  if (
    mtu !== undefined &&
    (!Number.isInteger(mtu) || (mtu as number) < 68 || (mtu as number) > 65535)
  )
    return { unsupported: `bridge mtu ${String(mtu)}` };
  return {
    name: list.name,
    bridge: str(c['bridge']) ?? 'cni0',
    isGateway: c['isGateway'] === true || isDefaultGateway,
    ipMasq: c['ipMasq'] === true,
    hairpin: c['hairpinMode'] === true,
    ...(mtu === undefined ? {} : { mtu: mtu as number }),
    ranges,
    routes,
    dataDir: str(ipam['dataDir']) ?? HOST_LOCAL_DATA_DIR,
    portmap: rest.some((p) => p.type === 'portmap' && p.capabilities.includes('portMappings')),
    macCapability: rest.some((p) => p.type === 'tuning' && p.capabilities.includes('mac')),
  };
}
