// `network create`, decided before anything is written: podman's
// NetworkCreate checks (name, driver, options, subnets, gateways, lease
// ranges, routes) and its choices (a free bridge name, a free subnet, the
// default gateway, dhcp for a macvlan without subnets), as one pure
// function of the request and what the host already has. Every refusal is
// a typed one-line error; the caller writes the file only with the result.
import { InvalidArgumentError } from '../errors.js';
import { type NetworkDriver, type NetworkInfo, type NetworkRoute, networkId } from './conflist.js';
import { NetworkError } from './errors.js';
import {
  firstHost,
  formatIp,
  formatSubnet,
  freeIPv4Subnet,
  freeIPv6Subnet,
  lastHost,
  parseIp,
  parseSubnet,
  type Subnet,
  subnetContains,
  subnetsOverlap,
} from './subnets.js';

/** What `networks.create()` takes: podman's `network create` options. */
export interface NetworkCreateOptions {
  /** [a-zA-Z0-9][a-zA-Z0-9_.-]* (default: the next free cni-podmanN, as podman names it). */
  name?: string;
  /** Default bridge. */
  driver?: NetworkDriver;
  /** CIDRs (default: a free IPv4 /24 from 10.89.0.0/16 upwards, for a bridge). */
  subnets?: string[];
  /** Gateways of the subnets, by position (default: each subnet's first address). */
  gateway?: string[];
  /** Lease ranges of the subnets, by position, each a CIDR inside its subnet. */
  ipRange?: string[];
  /** Dual stack: a free ULA /64 added when no IPv6 subnet is given. */
  ipv6?: boolean;
  /** No default route, no masquerade, no gateway on the bridge. */
  internal?: boolean;
  /** Container names resolved by dnsname (default true; bridge only; never on an internal network). */
  dns?: boolean;
  /** mtu, vlan, isolate, mode, parent, no_default_route (see DESIGN.md). */
  options?: Record<string, string | number | boolean>;
  /** Routes given to every container, each gateway inside one of the subnets. */
  routes?: NetworkRoute[];
  labels?: Record<string, string>;
}

/** What the host already has, which a new network must not collide with. */
export interface PlanContext {
  /** Networks in the config dir (and the default network). */
  existing: readonly NetworkInfo[];
  /** Destinations of the host's routes (default routes left out). */
  hostRoutes: readonly Subnet[];
  /** Interfaces of the host. */
  liveInterfaces: readonly string[];
  /** Whether the dnsname plugin is installed (podman adds it only then). */
  dnsname: boolean;
  /** When the file is written, ISO 8601. */
  now: string;
  /** Random bytes for the ULA subnet (a test seam). */
  random?: (n: number) => Uint8Array;
}

/** podman's NameRegex, for network and bridge names. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const MACVLAN_MODES = ['bridge', 'private', 'vepa', 'passthru'];
const IPVLAN_MODES = ['l2', 'l3', 'l3s'];
/** Go's strconv.ParseBool, which podman parses isolate with. */
const BOOLS: Record<string, boolean> = {
  '1': true,
  t: true,
  T: true,
  TRUE: true,
  true: true,
  True: true,
  '0': false,
  f: false,
  F: false,
  FALSE: false,
  false: false,
  False: false,
};

function integer(name: string, key: string, value: string, min: number, max: number): void {
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
    throw new NetworkError(
      'ERR_PODNET_NETWORK_OPTION',
      name,
      `option ${key} must be an integer from ${min} to ${max}, not '${value}'`,
    );
}

/**
 * The options as podman keeps them (strings), checked for DRIVER; `parent`
 * is taken out: it is the macvlan/ipvlan's network_interface.
 */
function checkOptions(
  name: string,
  driver: NetworkDriver,
  given: Record<string, string | number | boolean>,
): { options: Record<string, string>; parent?: string } {
  const options: Record<string, string> = {};
  let parent: string | undefined;
  const wrong = (detail: string): NetworkError =>
    new NetworkError('ERR_PODNET_NETWORK_OPTION', name, detail);
  for (const [key, raw] of Object.entries(given)) {
    const value = String(raw);
    switch (key) {
      case 'mtu':
        integer(name, key, value, 0, 65536);
        break;
      case 'vlan':
        if (driver !== 'bridge') throw wrong(`option vlan is for the bridge driver, not ${driver}`);
        integer(name, key, value, 0, 4094);
        break;
      case 'mode': {
        const modes =
          driver === 'macvlan' ? MACVLAN_MODES : driver === 'ipvlan' ? IPVLAN_MODES : [];
        if (modes.length === 0) throw wrong(`option mode is for macvlan and ipvlan, not ${driver}`);
        if (!modes.includes(value))
          throw wrong(`unknown ${driver} mode '${value}' (one of ${modes.join(', ')})`);
        break;
      }
      case 'isolate':
        if (driver !== 'bridge') throw wrong('option isolate is only for the bridge driver');
        if (value === 'strict')
          throw wrong(
            "isolate=strict is netavark's; the CNI firewall plugin's ingressPolicy knows only same-bridge (isolate=true)",
          );
        if (!(value in BOOLS)) throw wrong(`option isolate must be true or false, not '${value}'`);
        break;
      case 'no_default_route':
        if (!(value in BOOLS))
          throw wrong(`option no_default_route must be true or false, not '${value}'`);
        break;
      case 'parent':
        if (driver === 'bridge') throw wrong('option parent is for macvlan and ipvlan');
        parent = value;
        continue;
      case 'metric':
        throw wrong(
          'option metric cannot be honoured: the CNI plugins installed (1.1) set no route priority',
        );
      default:
        throw wrong(`unsupported network option '${key}'`);
    }
    options[key] = value;
  }
  return parent === undefined ? { options } : { options, parent };
}

/** The next free cni-podmanN (N from 1: 0 is the default network's), as podman's GetFreeDeviceName. */
function freeDeviceName(ctx: PlanContext): string {
  const taken = new Set([
    ...ctx.existing.map((n) => n.name),
    ...ctx.existing.flatMap((n) =>
      n.driver === 'bridge' && n.network_interface ? [n.network_interface] : [],
    ),
    ...ctx.liveInterfaces,
  ]);
  for (let i = 1; ; i++) if (!taken.has(`cni-podman${i}`)) return `cni-podman${i}`;
}

/**
 * The network `create` would write for OPTS in CTX, or the error saying why
 * not. Mirrors podman's NetworkCreate for the CNI backend, plus the checks
 * podman leaves to the plugins (subnets overlapping each other, a route's
 * gateway outside every subnet).
 */
export function planNetwork(opts: NetworkCreateOptions, ctx: PlanContext): NetworkInfo {
  const driver = opts.driver ?? 'bridge';
  const name = opts.name ?? freeDeviceName(ctx);
  if (!NAME.test(name) || name.length > 255)
    throw new InvalidArgumentError(
      `network name ${JSON.stringify(name)} is invalid: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*`,
    );
  if (!['bridge', 'macvlan', 'ipvlan'].includes(driver))
    throw new InvalidArgumentError(
      `network '${name}': unsupported driver '${driver}' (bridge, macvlan or ipvlan)`,
    );
  if (ctx.existing.some((n) => n.name === name))
    throw new NetworkError('ERR_PODNET_NETWORK_EXISTS', name, 'a network of that name exists');
  const { options, parent } = checkOptions(name, driver, opts.options ?? {});
  const internal = opts.internal ?? false;
  const given = opts.subnets ?? [];
  const gateways = opts.gateway ?? [];
  const ranges = opts.ipRange ?? [];
  if (gateways.length > given.length)
    throw new InvalidArgumentError(
      `network '${name}': more gateways than subnets (a gateway needs its --subnet)`,
    );
  if (ranges.length > given.length)
    throw new InvalidArgumentError(
      `network '${name}': more ip ranges than subnets (a range needs its --subnet)`,
    );

  const net: NetworkInfo = {
    name,
    id: networkId(name),
    driver,
    created: ctx.now,
    ipv6_enabled: false,
    internal,
    dns_enabled: false,
  };

  if (driver === 'bridge') {
    // An unnamed network's bridge takes its name, as podman's CommonNetworkCreate does.
    net.network_interface =
      opts.name === undefined ? name : freeDeviceName({ ...ctx, existing: [...ctx.existing, net] });
  } else {
    if (parent !== undefined && !ctx.liveInterfaces.includes(parent))
      throw new NetworkError(
        'ERR_PODNET_NETWORK_OPTION',
        name,
        `parent interface '${parent}' does not exist`,
      );
    if (parent !== undefined) net.network_interface = parent;
  }

  // Used subnets: only a bridge is checked against the host and the other
  // networks (podman's rule: a macvlan shares the parent's LAN on purpose).
  const used: Subnet[] =
    driver === 'bridge'
      ? [
          ...ctx.existing.flatMap((n) => (n.subnets ?? []).map((s) => parseSubnet(s.subnet))),
          ...ctx.hostRoutes,
        ]
      : [];
  const describeUser = (s: Subnet): string => {
    const owner = ctx.existing.find((n) =>
      (n.subnets ?? []).some((x) => subnetsOverlap(parseSubnet(x.subnet), s)),
    );
    return owner === undefined ? 'a route of the host' : `network '${owner.name}'`;
  };

  const subnets: { subnet: Subnet; gateway?: string; range?: Subnet }[] = [];
  given.forEach((text, i) => {
    const subnet = parseSubnet(text, `network '${name}': subnet`);
    const clash = used.find((u) => subnetsOverlap(u, subnet));
    if (clash !== undefined)
      throw new NetworkError(
        'ERR_PODNET_SUBNET_OVERLAP',
        name,
        `subnet ${formatSubnet(subnet)} overlaps ${formatSubnet(clash)} of ${describeUser(clash)}`,
      );
    const twin = subnets.find((s) => subnetsOverlap(s.subnet, subnet));
    if (twin !== undefined)
      throw new NetworkError(
        'ERR_PODNET_SUBNET_OVERLAP',
        name,
        `subnets ${formatSubnet(twin.subnet)} and ${formatSubnet(subnet)} overlap`,
      );
    const entry: (typeof subnets)[number] = { subnet };
    const gw = gateways[i];
    if (gw !== undefined && gw !== '') {
      const ip = parseIp(gw, `network '${name}': gateway`);
      if (!subnetContains(subnet, ip.family, ip.value))
        throw new InvalidArgumentError(
          `network '${name}': gateway ${gw} is not in subnet ${formatSubnet(subnet)}`,
        );
      entry.gateway = formatIp(ip.family, ip.value);
    }
    const range = ranges[i];
    if (range !== undefined && range !== '') {
      const r = parseSubnet(range, `network '${name}': ip range`);
      if (
        r.family !== subnet.family ||
        r.prefix < subnet.prefix ||
        !subnetContains(subnet, r.family, r.base)
      )
        throw new InvalidArgumentError(
          `network '${name}': ip range ${range} is not inside subnet ${formatSubnet(subnet)}`,
        );
      entry.range = r;
    }
    subnets.push(entry);
  });

  let ipamDriver = 'host-local';
  if (driver === 'bridge') {
    const none = (family: 4 | 6) => !subnets.some((s) => s.subnet.family === family);
    const taken = (): Subnet[] => [...used, ...subnets.map((s) => s.subnet)];
    if (subnets.length === 0 || (opts.ipv6 && none(4))) {
      const free = freeIPv4Subnet(taken());
      if (free === undefined)
        throw new NetworkError(
          'ERR_PODNET_NO_FREE_SUBNET',
          name,
          'no free IPv4 subnet in 10.89.0.0/16 to 10.128.0.0/9',
        );
      subnets.push({ subnet: free });
    }
    if (opts.ipv6 && none(6)) {
      const free = freeIPv6Subnet(taken(), ctx.random);
      if (free === undefined)
        throw new NetworkError('ERR_PODNET_NO_FREE_SUBNET', name, 'no free ULA /64 found');
      subnets.push({ subnet: free });
    }
  } else if (subnets.length === 0) {
    if (internal)
      throw new InvalidArgumentError(
        `network '${name}': internal is not supported with ${driver} and dhcp (give a subnet)`,
      );
    ipamDriver = 'dhcp';
  }

  if (ipamDriver === 'host-local') {
    net.subnets = subnets.map(({ subnet, gateway, range }) => {
      // podman adds the first address as gateway unless the network is internal.
      const gw = gateway ?? (internal ? undefined : formatIp(subnet.family, firstHost(subnet)));
      return {
        subnet: formatSubnet(subnet),
        ...(gw === undefined ? {} : { gateway: gw }),
        ...(range === undefined
          ? {}
          : {
              lease_range: {
                start_ip: formatIp(range.family, firstHost(range)),
                end_ip: formatIp(range.family, lastHost(range)),
              },
            }),
      };
    });
    net.ipv6_enabled = subnets.some((s) => s.subnet.family === 6);
  }

  const routes = (opts.routes ?? []).map((r) => {
    const dest = parseSubnet(r.destination, `network '${name}': route destination`);
    if (parseIp(r.destination.slice(0, r.destination.indexOf('/'))).value !== dest.base)
      throw new InvalidArgumentError(
        `network '${name}': route destination ${r.destination} is an address, not a network`,
      );
    const gw = parseIp(r.gateway, `network '${name}': route gateway`);
    if (!subnets.some((s) => subnetContains(s.subnet, gw.family, gw.value)))
      throw new InvalidArgumentError(
        `network '${name}': route gateway ${r.gateway} is in none of its subnets`,
      );
    return { destination: formatSubnet(dest), gateway: formatIp(gw.family, gw.value) };
  });
  if (routes.length > 0) net.routes = routes;

  // podman: dnsname serves bridges only, and not internal ones (the bridge
  // has no address for dnsmasq to listen on); without the plugin, no DNS.
  net.dns_enabled = driver === 'bridge' && (opts.dns ?? true) && !internal && ctx.dnsname;
  if (Object.keys(options).length > 0) net.options = options;
  for (const [k, v] of Object.entries(opts.labels ?? {}))
    if (typeof v !== 'string')
      throw new InvalidArgumentError(
        `network '${name}': label ${k} must be a string, not ${typeof v}`,
      );
  if (opts.labels !== undefined && Object.keys(opts.labels).length > 0)
    net.labels = { ...opts.labels };
  net.ipam_options = { driver: ipamDriver };
  return net;
}
