// The links of a bridge network, over netlink on kept sockets: the shared
// bridge (made once, by whichever setup comes first, in any process), and
// a container's veth pair, made in one request with its peer already in
// the container's namespace, named, addressed (MAC) and enslaved. What the
// bridge plugin does with a dozen requests and a thread per namespace,
// here in a handful of synchronous round trips of microseconds each.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';
import { isPodnetError, PodnetError } from '../errors.js';
import {
  decodeLinks,
  decodeRoutes,
  encodeDelLink,
  encodeDump,
  encodeGetLink,
  encodeNewAddr,
  encodeNewBridge,
  encodeNewRoute,
  encodeNewVeth,
  encodeSetHairpin,
  encodeSetIndexUp,
  encodeSetInetConf,
  IPV4_DEVCONF,
  type Link,
  type NetworkNamespace,
} from '../netns/index.js';
import type { BridgeNetwork } from './network.js';

/** The bridge name is taken by a link that is not a bridge. */
export class BridgeConflictError extends PodnetError {
  /** The bridge name. */
  readonly bridge: string;

  constructor(bridge: string, kind: string) {
    super(
      'ERR_PODNET_BRIDGE_CONFLICT',
      `cannot use '${bridge}' as a bridge: a link of kind '${kind}' has that name`,
    );
    this.bridge = bridge;
  }
}

/** A network's subnet overlaps a route of the host that does not go through its bridge. */
export class SubnetOverlapError extends PodnetError {
  /** The subnet. */
  readonly subnet: string;
  /** The route it overlaps. */
  readonly route: string;

  constructor(network: string, subnet: string, route: string, dev: string) {
    super(
      'ERR_PODNET_SUBNET_OVERLAP',
      `network '${network}': subnet ${subnet} overlaps the host's route to ${route} on '${dev}'`,
    );
    this.subnet = subnet;
    this.route = route;
  }
}

const errnoOf = (err: unknown): string | undefined =>
  isPodnetError(err) ? String(err.code) : undefined;

/** One link by name, or undefined when there is none (ENODEV). */
export function findLink(ns: NetworkNamespace, name: string): Link | undefined {
  const what = `looking up '${name}' in '${ns.path}'`;
  try {
    const reply = ns.rtnlRequestSync(what, encodeGetLink(name));
    return decodeLinks(reply, reply.length, what)[0];
  } catch (err) {
    if (errnoOf(err) === 'ENODEV') return undefined;
    throw err;
  }
}

/** A random unicast, locally administered MAC, as the kernel makes for a veth. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

function overlaps(a: string, b: string): boolean {
  const [na, pa] = ipaddr.parseCIDR(a);
  const [nb, pb] = ipaddr.parseCIDR(b);
  if (na.kind() !== nb.kind()) return false;
  // Two prefixes overlap when the shorter one contains the other's network.
  return pa <= pb ? nb.match(na, pa) : na.match(nb, pb);
}

/**
 * Refuses a network whose subnets overlap a route of the host (other than
 * the default route, and the routes through its own bridge), as podman
 * refuses to create one: its containers could not reach what that route
 * leads to. Reads only.
 */
function checkSubnets(host: NetworkNamespace, net: BridgeNetwork): void {
  const what = `listing the routes of '${host.path}'`;
  const reply = host.rtnlRequestSync(what, encodeDump('routes', 0));
  const routes = decodeRoutes(reply, reply.length, what).filter(
    (r) => r.table === 254 && r.type === 1 && r.prefixLength > 0,
  );
  if (routes.length === 0) return;
  const bridge = findLink(host, net.bridge);
  const linkReply = host.rtnlRequestSync('listing links', encodeGetLink());
  const names = new Map(decodeLinks(linkReply, linkReply.length).map((l) => [l.index, l.name]));
  for (const range of net.ranges.flat()) {
    for (const r of routes) {
      if (bridge && r.index === bridge.index) continue;
      const dst = `${r.destination}/${r.prefixLength}`;
      if (overlaps(range.subnet, dst))
        throw new SubnetOverlapError(
          net.name,
          range.subnet,
          dst,
          names.get(r.index ?? 0) ?? `#${r.index ?? 0}`,
        );
    }
  }
}

/** The bridge a setup attaches to: its index and MAC. */
export interface BridgeLink {
  index: number;
  mac: string;
}

/**
 * Checks a network against the host before anything is made: a bridge
 * name held by a link of another kind is refused; a bridge still to be
 * made must not take a subnet that a host route leads elsewhere (one that
 * exists had its subnets checked when it was made, and its own routes are
 * on it). Reads only.
 */
export function checkNetwork(host: NetworkNamespace, net: BridgeNetwork): void {
  const link = findLink(host, net.bridge);
  if (link && link.kind !== 'bridge')
    throw new BridgeConflictError(net.bridge, link.kind ?? 'unknown');
  if (!link) checkSubnets(host, net);
}

/** The prefix length of the range `gateway` belongs to. */
function gatewayCidr(range: { subnet: string; gateway: string }): string {
  return `${range.gateway}/${range.subnet.split('/')[1]}`;
}

function ignore(code: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (errnoOf(err) !== code) throw err;
  }
}

/**
 * Makes the network's bridge if it is missing, and brings it to what a
 * setup needs: up, with its gateway addresses, and with route_localnet
 * when ports are published (so a DNAT of 127.0.0.1 may leave loopback).
 * Safe against any number of setups doing the same at once, in this
 * process or others: creation is exclusive (EEXIST means somebody else
 * made it, and it is looked up again), an address already there is fine.
 */
export function ensureBridge(
  host: NetworkNamespace,
  net: BridgeNetwork,
  opts: { localnet: boolean },
): BridgeLink {
  let link = findLink(host, net.bridge);
  if (!link) {
    ignore('EEXIST', () =>
      host.rtnlAckSync(
        `creating bridge '${net.bridge}'`,
        encodeNewBridge({
          name: net.bridge,
          mac: randomMac(),
          up: true,
          ...(net.mtu === undefined ? {} : { mtu: net.mtu }),
        }),
      ),
    );
    link = findLink(host, net.bridge);
    if (!link) throw new PodnetError('ENODEV', `bridge '${net.bridge}' vanished as it was made`);
  }
  if (link.kind !== 'bridge') throw new BridgeConflictError(net.bridge, link.kind ?? 'unknown');
  if (net.isGateway) {
    for (const range of net.ranges.map((set) => set[0]!)) {
      ignore('EEXIST', () =>
        host.rtnlAckSync(
          `adding ${gatewayCidr(range)} to '${net.bridge}'`,
          encodeNewAddr(link.index, gatewayCidr(range), { noDad: true }),
        ),
      );
    }
  }
  if (!link.up) host.rtnlAckSync(`setting '${net.bridge}' up`, encodeSetIndexUp(link.index));
  if (opts.localnet) {
    host.rtnlAckSync(
      `setting route_localnet on '${net.bridge}'`,
      encodeSetInetConf(link.index, [[IPV4_DEVCONF.ROUTE_LOCALNET, 1]]),
    );
  }
  return { index: link.index, mac: link.mac };
}

/**
 * Turns on IP forwarding in the host namespace, as the bridge plugin does
 * for a gateway (IPv6 forwarding only when the network has IPv6). Written
 * through /proc/sys from this thread, which is in the host's namespace.
 */
export function enableForwarding(v6: boolean): void {
  const files = [
    '/proc/sys/net/ipv4/ip_forward',
    ...(v6 ? ['/proc/sys/net/ipv6/conf/all/forwarding'] : []),
  ];
  for (const file of files) {
    if (readFileSync(file, 'utf8').trim() !== '1') writeFileSync(file, '1');
  }
}

/** A container's end of a network, as made. */
export interface ContainerLink {
  /** The host end's name and MAC. */
  host: { name: string; mac: string };
  /** The container end's name and MAC. */
  container: { name: string; mac: string };
}

/**
 * Creates the veth pair: the host end up on the bridge, the peer (down
 * until {@link configureContainer}) in the container's namespace; hairpin
 * mode on the host end if the network asks for it.
 */
export function createVeth(
  host: NetworkNamespace,
  ctr: NetworkNamespace,
  net: BridgeNetwork,
  bridge: BridgeLink,
  names: { host: string; container: string; mac?: string },
): ContainerLink {
  const hostMac = randomMac();
  const ctrMac = names.mac ?? randomMac();
  host.rtnlAckSync(
    `creating veth '${names.host}' for '${names.container}' in '${ctr.path}'`,
    encodeNewVeth({
      name: names.host,
      peerName: names.container,
      peerNetnsFd: ctr.fd,
      mac: hostMac,
      peerMac: ctrMac,
      master: bridge.index,
      up: true,
      ...(net.mtu === undefined ? {} : { mtu: net.mtu }),
    }),
  );
  if (net.hairpin) {
    const link = findLink(host, names.host);
    if (!link) throw new PodnetError('ENODEV', `veth '${names.host}' vanished as it was made`);
    host.rtnlAckSync(`setting hairpin mode on '${names.host}'`, encodeSetHairpin(link.index, true));
  }
  return {
    host: { name: names.host, mac: hostMac },
    container: { name: names.container, mac: ctrMac },
  };
}

/**
 * Configures the container's side: its addresses (IPv6 without DAD, as
 * the bridge plugin does), the link up with arp_notify (so neighbours
 * learn a reused address's new MAC at once), the routes.
 */
export function configureContainer(
  ctr: NetworkNamespace,
  ifName: string,
  addresses: { address: string; gateway?: string }[],
  routes: { dst: string; gw?: string }[],
): void {
  const link = findLink(ctr, ifName);
  if (!link) throw new PodnetError('ENODEV', `'${ifName}' is missing in '${ctr.path}'`);
  for (const a of addresses) {
    ctr.rtnlAckSync(
      `adding ${a.address} to '${ifName}' in '${ctr.path}'`,
      encodeNewAddr(link.index, a.address, { noDad: true }),
    );
  }
  ctr.rtnlAckSync(
    `setting '${ifName}' up with arp_notify in '${ctr.path}'`,
    encodeSetInetConf(link.index, [[IPV4_DEVCONF.ARP_NOTIFY, 1]], { up: true }),
  );
  for (const r of routes) {
    const v6 = r.dst.includes(':');
    const gw = r.gw ?? addresses.find((a) => a.address.includes(':') === v6)?.gateway;
    ignore('EEXIST', () =>
      ctr.rtnlAckSync(
        `adding a route to ${r.dst} in '${ctr.path}'`,
        encodeNewRoute({
          dst: r.dst,
          ifindex: link.index,
          ...(gw === undefined ? {} : { gateway: gw }),
        }),
      ),
    );
  }
}

/**
 * Deletes a link if it is there: for a veth in a namespace podnet does not
 * remove (a { pid } container's), the only undo there is. Synchronous in
 * the kernel (it waits for the link to go), so used only then.
 */
export function deleteLinkIfPresent(host: NetworkNamespace, name: string): void {
  ignore('ENODEV', () => host.rtnlAckSync(`deleting '${name}'`, encodeDelLink(name)));
}
