// A network object and its conflist, both ways, as podman 4's CNI backend
// (containers/common libnetwork/cni) writes and reads them: the Network in
// podman's JSON shape; bridge + portmap + firewall + tuning (+ dnsname) or a
// single macvlan/ipvlan plugin; labels and options kept under `args`
// (podman_labels, podman_options) so that podman, reading the same file,
// sees the network it would have made. Pure: JSON in, JSON out.
import { createHash } from 'node:crypto';
import type { CniNetworkList } from '../cni/index.js';
import { firstHost, formatIp, parseSubnet } from './subnets.js';

/** The network drivers podman's CNI backend creates. */
export type NetworkDriver = 'bridge' | 'macvlan' | 'ipvlan';

/** One subnet of a network, as podman's inspect shows it. */
export interface NetworkSubnet {
  /** CIDR, the network address. */
  subnet: string;
  gateway?: string;
  /** The part of the subnet leases come from (podman's --ip-range). */
  lease_range?: { start_ip?: string; end_ip?: string };
}

/** A route the network gives its containers (netavark's --route; host-local `routes`). */
export interface NetworkRoute {
  destination: string;
  gateway: string;
}

/** A network as `podman network inspect` shows it (libnetwork's types.Network). */
export interface NetworkInfo {
  name: string;
  /** sha256 of the name, hex: podman's ID of a CNI network. */
  id: string;
  /** The first plugin's type: bridge, macvlan, ipvlan (or whatever a hand-written list starts with). */
  driver: string;
  /** The bridge, or the parent of a macvlan/ipvlan. */
  network_interface?: string;
  /** When the conflist was written (its ctime), ISO 8601. */
  created: string;
  subnets?: NetworkSubnet[];
  routes?: NetworkRoute[];
  ipv6_enabled: boolean;
  internal: boolean;
  dns_enabled: boolean;
  labels?: Record<string, string>;
  options?: Record<string, string>;
  /** `driver`: host-local, dhcp or none. */
  ipam_options?: Record<string, string>;
}

/** The domain dnsname serves container names in (podman's defaultPodmanDomainName). */
export const DNS_DOMAIN = 'dns.podman';

/** podman's ID of a CNI network: the sha256 of its name (getNetworkIDFromName). */
export function networkId(name: string): string {
  return createHash('sha256').update(name).digest('hex');
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function strings(x: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObject(x)) for (const [k, v] of Object.entries(x)) if (typeof v === 'string') out[k] = v;
  return out;
}

function hostLocalIpam(net: NetworkInfo): Record<string, unknown> {
  const noDefault = ['true', '1', 't'].includes(
    (net.options?.['no_default_route'] ?? '').toLowerCase(),
  );
  const routes: Record<string, string>[] = [];
  if (!net.internal && !noDefault) {
    // One default route per family, as podman writes them.
    const families = new Set((net.subnets ?? []).map((s) => parseSubnet(s.subnet).family));
    for (const f of [4, 6] as const)
      if (families.has(f)) routes.push({ dst: f === 4 ? '0.0.0.0/0' : '::/0' });
  }
  for (const r of net.routes ?? []) routes.push({ dst: r.destination, gw: r.gateway });
  return {
    type: 'host-local',
    ...(routes.length > 0 ? { routes } : {}),
    ranges: (net.subnets ?? []).map((s) => [
      {
        subnet: s.subnet,
        ...(s.lease_range?.start_ip === undefined ? {} : { rangeStart: s.lease_range.start_ip }),
        ...(s.lease_range?.end_ip === undefined ? {} : { rangeEnd: s.lease_range.end_ip }),
        ...(s.gateway === undefined ? {} : { gateway: s.gateway }),
      },
    ]),
  };
}

/**
 * The conflist of NET, as podman's createCNIConfigListFromNetwork writes it
 * (cniVersion 0.4.0, which Debian's dnsname plugin speaks; keys in the order
 * podman's encoder gives them; three-space indent). NET was planned
 * (plan.ts): its options are valid for its driver. With `dnsname` false the
 * dnsname plugin is left out whatever `dns_enabled` says: podman does the
 * same when the plugin is not installed.
 */
export function buildConflist(net: NetworkInfo, dnsname: boolean): string {
  const opts = net.options ?? {};
  const int = (k: string): number | undefined =>
    opts[k] === undefined ? undefined : Number(opts[k]);
  const ipamDriver = net.ipam_options?.['driver'] ?? 'host-local';
  const ipam =
    ipamDriver === 'host-local'
      ? hostLocalIpam(net)
      : ipamDriver === 'dhcp'
        ? { type: 'dhcp' }
        : {};
  const ips = ipamDriver === 'host-local' ? { capabilities: { ips: true } } : {};
  const mtu = int('mtu') ? { mtu: int('mtu') } : {};
  let plugins: Record<string, unknown>[];
  if (net.driver === 'bridge') {
    const isolate = ['true', '1', 't'].includes((opts['isolate'] ?? '').toLowerCase());
    plugins = [
      {
        type: 'bridge',
        bridge: net.network_interface,
        isGateway: !net.internal,
        ...(net.internal ? {} : { ipMasq: true }),
        ...mtu,
        hairpinMode: true,
        ...(int('vlan') ? { vlan: int('vlan') } : {}),
        ipam,
        ...ips,
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'firewall', backend: '', ...(isolate ? { ingressPolicy: 'same-bridge' } : {}) },
      { type: 'tuning' },
      ...(dnsname && net.dns_enabled
        ? [{ type: 'dnsname', domainName: DNS_DOMAIN, capabilities: { aliases: true } }]
        : []),
    ];
  } else {
    plugins = [
      {
        type: net.driver,
        master: net.network_interface ?? '',
        ipam,
        ...mtu,
        ...(opts['mode'] === undefined ? {} : { mode: opts['mode'] }),
        ...ips,
      },
    ];
  }
  const args = {
    ...(net.labels && Object.keys(net.labels).length > 0 ? { podman_labels: net.labels } : {}),
    ...(net.options && Object.keys(net.options).length > 0 ? { podman_options: net.options } : {}),
  };
  const list = {
    ...(Object.keys(args).length > 0 ? { args } : {}),
    cniVersion: '0.4.0',
    name: net.name,
    plugins,
  };
  return `${JSON.stringify(list, null, 3)}\n`;
}

function subnetsOf(ipam: Record<string, unknown>, internal: boolean): NetworkSubnet[] {
  const out: NetworkSubnet[] = [];
  const ranges = Array.isArray(ipam['ranges']) ? ipam['ranges'] : [];
  for (const set of ranges) {
    for (const r of Array.isArray(set) ? set : []) {
      if (!isObject(r) || typeof r['subnet'] !== 'string') continue;
      let s: ReturnType<typeof parseSubnet>;
      try {
        s = parseSubnet(r['subnet']);
      } catch {
        continue; // libcni took it, podman's reader would fail: shown without it.
      }
      const gw = typeof r['gateway'] === 'string' ? r['gateway'] : undefined;
      const start = typeof r['rangeStart'] === 'string' ? r['rangeStart'] : undefined;
      const end = typeof r['rangeEnd'] === 'string' ? r['rangeEnd'] : undefined;
      out.push({
        subnet: `${formatIp(s.family, s.base)}/${s.prefix}`,
        // As podman reads it: no gateway written means the first address,
        // unless the network is internal.
        ...(gw !== undefined
          ? { gateway: gw }
          : internal
            ? {}
            : { gateway: formatIp(s.family, firstHost(s)) }),
        ...(start !== undefined || end !== undefined
          ? {
              lease_range: {
                ...(start === undefined ? {} : { start_ip: start }),
                ...(end === undefined ? {} : { end_ip: end }),
              },
            }
          : {}),
      });
    }
  }
  return out;
}

/**
 * The network a conflist describes, as podman's createNetworkFromCNIConfigList
 * reads one: the driver from the first plugin, the interface, internal
 * (isGateway false), mtu, vlan and mode from it, subnets from host-local,
 * DNS from a dnsname plugin, isolate from the firewall's ingressPolicy, and
 * labels and options from `args`. CREATED is the file's time. Any list
 * loads, hand-written ones too: what is not podman's shape is left out.
 */
export function networkFromConflist(list: CniNetworkList, created: string): NetworkInfo {
  const raw: unknown = JSON.parse(list.bytes);
  const args = isObject(raw) && isObject(raw['args']) ? raw['args'] : {};
  const labels = strings(args['podman_labels']);
  const options = strings(args['podman_options']);
  const first = list.plugins[0]?.config ?? {};
  const driver = list.plugins[0]?.type ?? '';
  const net: NetworkInfo = {
    name: list.name,
    id: networkId(list.name),
    driver,
    created,
    ipv6_enabled: false,
    internal: false,
    dns_enabled: list.plugins.some((p) => p.type === 'dnsname'),
  };
  const ipamOptions: Record<string, string> = {};
  if (['bridge', 'macvlan', 'ipvlan'].includes(driver)) {
    const ifName = driver === 'bridge' ? first['bridge'] : first['master'];
    if (typeof ifName === 'string' && ifName !== '') net.network_interface = ifName;
    if (driver === 'bridge' && first['isGateway'] !== true) net.internal = true;
    if (typeof first['mtu'] === 'number' && first['mtu'] !== 0)
      options['mtu'] = String(first['mtu']);
    if (driver === 'bridge' && typeof first['vlan'] === 'number' && first['vlan'] !== 0)
      options['vlan'] = String(first['vlan']);
    if (driver !== 'bridge' && typeof first['mode'] === 'string' && first['mode'] !== '')
      options['mode'] = first['mode'];
    const ipam = isObject(first['ipam']) ? first['ipam'] : {};
    const type = typeof ipam['type'] === 'string' ? ipam['type'] : '';
    ipamOptions['driver'] = type === '' ? 'none' : type;
    if (type === 'host-local') {
      const subnets = subnetsOf(ipam, net.internal);
      if (subnets.length > 0) net.subnets = subnets;
      net.ipv6_enabled = subnets.some((s) => s.subnet.includes(':'));
      const routes = (Array.isArray(ipam['routes']) ? ipam['routes'] : []).flatMap((r) =>
        isObject(r) && typeof r['dst'] === 'string' && typeof r['gw'] === 'string'
          ? [{ destination: r['dst'], gateway: r['gw'] }]
          : [],
      );
      if (routes.length > 0) net.routes = routes;
    }
  }
  const firewall = list.plugins.find((p) => p.type === 'firewall');
  if (firewall?.config['ingressPolicy'] === 'same-bridge') options['isolate'] ??= 'true';
  if (Object.keys(labels).length > 0) net.labels = labels;
  if (Object.keys(options).length > 0) net.options = options;
  if (Object.keys(ipamOptions).length > 0) net.ipam_options = ipamOptions;
  return net;
}
