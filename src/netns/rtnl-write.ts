// rtnetlink requests that change links, addresses and routes: create a
// bridge or a veth pair, set a link up, add an address or a route, set a
// bridge port's hairpin mode or a device's IPv4 settings, delete a link.
// What podnet itself needs (a namespace's loopback up, the native bridge
// driver) and what test topologies need, without spawning iproute2. The
// kernel answers each with an ack (NLMSG_ERROR 0).
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { MessageWriter } from './nlmsg.js';
import { ipv6Bytes } from './sockaddr.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
// PF_BRIDGE registers its link settings for RTM_SETLINK only: a NEWLINK
// with family AF_BRIDGE reaches the generic handler and changes nothing.
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_AF_SPEC = 26;
const IFLA_INET_CONF = 1;
const IFLA_BRPORT_MODE = 4;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;
const RTNH_F_ONLINK = 4;
const AF_BRIDGE = 7;
const IFF_UP = 1;
const AF_INET = 2;
const AF_INET6 = 10;

function ifinfomsg(flags = 0, change = 0, index = 0, family = 0): Buffer {
  const b = Buffer.alloc(16);
  b[0] = family;
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
}

/** "aa:bb:cc:dd:ee:ff" as 6 bytes; the caller has validated the form. */
function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}

/** Requests `ifname` be set up (IFF_UP). */
export function encodeSetLinkUp(ifname: string): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg(IFF_UP, IFF_UP))
    .str(IFLA_IFNAME, ifname)
    .finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/** Requests `ifname` be deleted (with a veth, its peer goes too). */
export function encodeDelLink(ifname: string): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg())
    .str(IFLA_IFNAME, ifname)
    .finish(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/** Requests a new link of a kind that needs no options (bridge, dummy). */
export function encodeNewLink(ifname: string, kind: 'bridge' | 'dummy'): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg())
    .str(IFLA_IFNAME, ifname)
    .begin(IFLA_LINKINFO)
    .str(IFLA_INFO_KIND, kind)
    .end()
    .finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** Options of a new bridge. */
export interface BridgeRequest {
  name: string;
  /** A fixed MAC, so the bridge's address does not change as ports come and go. */
  mac?: string;
  mtu?: number;
  /** Create it up. */
  up?: boolean;
}

/** Requests a new bridge (EEXIST if the name is taken, whatever its kind). */
export function encodeNewBridge(req: BridgeRequest): Buffer {
  const w = new MessageWriter().raw(req.up ? ifinfomsg(IFF_UP, IFF_UP) : ifinfomsg());
  w.str(IFLA_IFNAME, req.name);
  if (req.mac !== undefined) w.attr(IFLA_ADDRESS, macBytes(req.mac));
  if (req.mtu !== undefined) w.u32(IFLA_MTU, req.mtu);
  w.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, 'bridge').end();
  return w.finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** Requests the link with index `ifindex` be set up. */
export function encodeSetIndexUp(ifindex: number): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg(IFF_UP, IFF_UP, ifindex))
    .finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/**
 * Requests hairpin mode on a bridge port (IFLA_BRPORT_MODE through the
 * bridge's own setlink, family AF_BRIDGE): frames may go back out of the
 * port they came in on, so a container reaches itself through the host.
 */
export function encodeSetHairpin(ifindex: number, on: boolean): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg(0, 0, ifindex, AF_BRIDGE))
    .begin(IFLA_PROTINFO)
    .u8(IFLA_BRPORT_MODE, on ? 1 : 0)
    .end()
    .finish(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/** Per-device IPv4 settings, by their IPV4_DEVCONF_* index (linux/ip.h). */
export const IPV4_DEVCONF = { FORWARDING: 1, ARP_NOTIFY: 22, ROUTE_LOCALNET: 26 } as const;

/**
 * Requests per-device IPv4 settings (net.ipv4.conf.IF.*) through
 * IFLA_AF_SPEC, and with `up` the link set up in the same request: the
 * netlink way to write those sysctls, which works on a namespace's socket
 * from any thread, where /proc/sys would need a thread inside the namespace.
 */
export function encodeSetInetConf(
  ifindex: number,
  conf: [index: number, value: number][],
  opts: { up?: boolean } = {},
): Buffer {
  const w = new MessageWriter().raw(
    opts.up ? ifinfomsg(IFF_UP, IFF_UP, ifindex) : ifinfomsg(0, 0, ifindex),
  );
  w.begin(IFLA_AF_SPEC).begin(AF_INET).begin(IFLA_INET_CONF);
  for (const [index, value] of conf) w.u32(index, value);
  w.end().end().end();
  return w.finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/** Requests `ifname` be enslaved to the link with index `master` (0: released). */
export function encodeSetMaster(ifname: string, master: number): Buffer {
  return new MessageWriter()
    .raw(ifinfomsg())
    .str(IFLA_IFNAME, ifname)
    .u32(IFLA_MASTER, master)
    .finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
}

/** Options of a veth pair: this end's name, the peer's name and the namespace (fd) it goes to. */
export interface VethRequest {
  name: string;
  peerName: string;
  /** fd of the namespace the peer is moved to (omit: same namespace). */
  peerNetnsFd?: number;
  mtu?: number;
  /** This end's MAC (omit: the kernel's random one). */
  mac?: string;
  /** The peer's MAC. */
  peerMac?: string;
  /** Index of the bridge this end is enslaved to, in the same request. */
  master?: number;
  /**
   * Create this end up. The peer always starts down: the kernel opens it
   * before the pair is joined, and a veth without a peer cannot be up
   * (ENOTCONN).
   */
  up?: boolean;
}

/**
 * Requests a new veth pair (fails with EEXIST if a name is taken): one
 * request makes both ends, moves the peer, names, addresses and enslaves
 * them, so there is never a half-made pair to clean up.
 */
export function encodeNewVeth(req: VethRequest): Buffer {
  const w = new MessageWriter()
    .raw(req.up ? ifinfomsg(IFF_UP, IFF_UP) : ifinfomsg())
    .str(IFLA_IFNAME, req.name);
  if (req.mtu !== undefined) w.u32(IFLA_MTU, req.mtu);
  if (req.mac !== undefined) w.attr(IFLA_ADDRESS, macBytes(req.mac));
  if (req.master !== undefined) w.u32(IFLA_MASTER, req.master);
  w.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, 'veth').begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
  w.raw(ifinfomsg()).str(IFLA_IFNAME, req.peerName);
  if (req.mtu !== undefined) w.u32(IFLA_MTU, req.mtu);
  if (req.peerMac !== undefined) w.attr(IFLA_ADDRESS, macBytes(req.peerMac));
  if (req.peerNetnsFd !== undefined) w.u32(IFLA_NET_NS_FD, req.peerNetnsFd);
  w.end().end().end();
  return w.finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** Parses "ADDR/PREFIX" into family, bytes and prefix length, or throws InvalidArgumentError. */
export function parseCidr(cidr: string): { family: 4 | 6; bytes: Buffer; prefix: number } {
  const [addr = '', len, ...rest] = String(cidr).split('/');
  const family = isIP(addr);
  const prefix = Number(len);
  const max = family === 4 ? 32 : 128;
  if (!family || rest.length || len === undefined || !/^\d+$/.test(len) || prefix > max) {
    throw new InvalidArgumentError(
      `expected an address with a prefix length (10.0.0.1/24, fd00::1/64), not '${cidr}'`,
    );
  }
  const bytes = family === 4 ? Buffer.from(addr.split('.').map(Number)) : ipv6Bytes(addr);
  return { family: family as 4 | 6, bytes, prefix };
}

/**
 * Requests an address on the link with index `ifindex`; `noDad` skips
 * IPv6 duplicate address detection, so the address is usable at once (the
 * bridge plugin turns DAD off on a container's interface too).
 */
export function encodeNewAddr(
  ifindex: number,
  cidr: string,
  opts: { noDad?: boolean } = {},
): Buffer {
  const { family, bytes, prefix } = parseCidr(cidr);
  const msg = Buffer.alloc(8);
  msg[0] = family === 4 ? AF_INET : AF_INET6;
  msg[1] = prefix;
  msg.writeUInt32LE(ifindex, 4);
  const w = new MessageWriter().raw(msg).attr(IFA_LOCAL, bytes).attr(IFA_ADDRESS, bytes);
  if (opts.noDad && family === 6) w.u32(IFA_FLAGS, IFA_F_NODAD);
  return w.finish(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

/** A route: destination CIDR, optional gateway, out through one link. */
export interface RouteRequest {
  dst: string;
  gateway?: string;
  ifindex: number;
  /**
   * The gateway is on the link even though no address of the link covers
   * it (RTNH_F_ONLINK, `ip route ... onlink`): flannel's VXLAN route to a
   * peer's subnet goes via the peer's /32 on the VXLAN device.
   */
  onlink?: boolean;
}

/** Requests a route in the main table (EEXIST if the same route exists). */
export function encodeNewRoute(req: RouteRequest): Buffer {
  const dst = parseCidr(req.dst);
  const gw =
    req.gateway === undefined
      ? undefined
      : parseCidr(`${req.gateway}/${dst.family === 4 ? 32 : 128}`);
  if (gw && gw.family !== dst.family)
    throw new InvalidArgumentError(`route to ${req.dst} cannot go through ${req.gateway}`);
  const msg = Buffer.alloc(12);
  msg[0] = dst.family === 4 ? AF_INET : AF_INET6;
  msg[1] = dst.prefix;
  msg[4] = RT_TABLE_MAIN;
  msg[5] = RTPROT_BOOT;
  msg[6] = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  msg[7] = RTN_UNICAST;
  if (req.onlink) msg.writeUInt32LE(RTNH_F_ONLINK, 8);
  const w = new MessageWriter().raw(msg);
  if (dst.prefix > 0) w.attr(RTA_DST, dst.bytes);
  if (gw) w.attr(RTA_GATEWAY, gw.bytes);
  w.u32(RTA_OIF, req.ifindex);
  return w.finish(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

// A flannel-style VXLAN backend, as flannel's vxlan backend builds it
// (backend/vxlan/device.go over vishvananda/netlink): a `flannel.<VNI>`
// device over the underlay, and per peer node an onlink route, a permanent
// neighbour and an FDB entry. The requests are those of `ip link add ...
// type vxlan`, `ip neigh replace`, `bridge fdb` and `ip route ... onlink`.

const RTM_NEWNEIGH = 28;
const NLM_F_APPEND = 0x800;
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const IFNAMSIZ = 16;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** The UDP port of flannel's VXLAN backend (and the Linux kernel's default; IANA's is 4789). */
export const FLANNEL_VXLAN_PORT = 8472;

function checkedIpv4(addr: unknown, what: string): Buffer {
  if (typeof addr !== 'string' || isIP(addr) !== 4)
    throw new InvalidArgumentError(`${what} must be an IPv4 address, not ${JSON.stringify(addr)}`);
  return Buffer.from(addr.split('.').map(Number));
}

function checkedMac(mac: unknown, what: string): Buffer {
  if (typeof mac !== 'string' || !MAC_RE.test(mac))
    throw new InvalidArgumentError(
      `${what} must be a MAC address (aa:bb:cc:dd:ee:ff), not ${JSON.stringify(mac)}`,
    );
  return macBytes(mac);
}

function checkedInt(v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}, not ${v}`);
  return v;
}

function checkedIfindex(v: unknown, what: string): number {
  return checkedInt(v, 1, 0x7fffffff, what);
}

/** A VXLAN device as flannel's backend makes it. */
export interface VxlanRequest {
  /** Its name: flannel's is `flannel.<VNI>`. */
  name: string;
  /** The VXLAN network identifier (24 bits; flannel's default 1). */
  vni: number;
  /** This node's underlay IPv4 address, the tunnel's source (IFLA_VXLAN_LOCAL). */
  local: string;
  /** Index of the underlay link the encapsulated packets leave through (IFLA_VXLAN_LINK). */
  underlayIfindex: number;
  /** UDP destination port; default {@link FLANNEL_VXLAN_PORT}. */
  port?: number;
  /** Learn remote MACs from what arrives; default false: flannel writes every FDB entry itself. */
  learning?: boolean;
  /** The device's MAC: what peers put in their neighbour and FDB entries for this node. */
  mac?: string;
  /** Its MTU: flannel's is the underlay's less 50 (the VXLAN, UDP, IPv4 and Ethernet headers). */
  mtu?: number;
}

/**
 * Requests a new VXLAN device, created down (set it up with
 * {@link encodeSetIndexUp} or {@link encodeSetLinkUp} once its address is
 * on): `ip link add NAME address MAC mtu MTU type vxlan id VNI local IP
 * dev UNDERLAY dstport PORT nolearning`. EEXIST when the name is taken.
 * The same attributes as ip(8) sends; the kernel's defaults for the rest
 * (ttl inherit, udpcsum, ageing 300) are what flannel's explicit zeros give.
 */
export function encodeNewVxlan(req: VxlanRequest): Buffer {
  const name = req.name;
  if (typeof name !== 'string' || name === '' || Buffer.byteLength(name) >= IFNAMSIZ)
    throw new InvalidArgumentError(
      `a VXLAN device name must be 1 to 15 bytes, not ${JSON.stringify(name)}`,
    );
  const vni = checkedInt(req.vni, 0, 0xffffff, 'a VNI');
  const local = checkedIpv4(req.local, 'the VXLAN local address');
  const underlay = checkedIfindex(req.underlayIfindex, 'the underlay ifindex');
  const port = Buffer.alloc(2);
  port.writeUInt16BE(checkedInt(req.port ?? FLANNEL_VXLAN_PORT, 1, 0xffff, 'the VXLAN port'));
  // In ip(8)'s order: its request but for the nest flags and the kind's NUL.
  const w = new MessageWriter().raw(ifinfomsg());
  if (req.mac !== undefined) w.attr(IFLA_ADDRESS, checkedMac(req.mac, 'the VXLAN MAC'));
  if (req.mtu !== undefined) w.u32(IFLA_MTU, checkedInt(req.mtu, 68, 65535, 'the VXLAN MTU'));
  w.str(IFLA_IFNAME, name).begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, 'vxlan').begin(IFLA_INFO_DATA);
  w.u32(IFLA_VXLAN_LINK, underlay)
    .u32(IFLA_VXLAN_ID, vni)
    .attr(IFLA_VXLAN_LOCAL, local)
    .u8(IFLA_VXLAN_LEARNING, req.learning ? 1 : 0)
    // The port is the one attribute of the set in network order.
    .attr(IFLA_VXLAN_PORT, port);
  w.end().end();
  return w.finish(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}

// struct ndmsg (linux/neighbour.h): family, 3 pad, ifindex, state, flags, type.
function ndmsg(family: number, ifindex: number, state: number, flags: number): Buffer {
  const b = Buffer.alloc(12);
  b[0] = family;
  b.writeInt32LE(ifindex, 4);
  b.writeUInt16LE(state, 8);
  b[10] = flags;
  return b;
}

/** A static IPv4 neighbour: this address is at this MAC on this link. */
export interface NeighborRequest {
  /** Index of the link (flannel: the VXLAN device). */
  ifindex: number;
  /** The neighbour's IPv4 address (flannel: the peer's VXLAN /32, its subnet's .0). */
  ip: string;
  /** Its MAC (flannel: the peer's VXLAN device's). */
  mac: string;
}

/**
 * Requests a permanent IPv4 neighbour entry, replacing any entry for that
 * address on the link (`ip neigh replace IP lladdr MAC dev DEV nud
 * permanent`): with it the kernel never ARPs for a peer across the tunnel.
 */
export function encodeNewNeighbor(req: NeighborRequest): Buffer {
  const ifindex = checkedIfindex(req.ifindex, 'the neighbour ifindex');
  return new MessageWriter()
    .raw(ndmsg(AF_INET, ifindex, NUD_PERMANENT, 0))
    .attr(NDA_DST, checkedIpv4(req.ip, 'the neighbour address'))
    .attr(NDA_LLADDR, checkedMac(req.mac, 'the neighbour MAC'))
    .finish(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE);
}

/** A VXLAN forwarding entry: frames to this MAC go to this remote underlay address. */
export interface FdbRequest {
  /** Index of the VXLAN device. */
  ifindex: number;
  /** The remote VTEP's MAC (the peer's VXLAN device's). */
  mac: string;
  /** The peer's underlay IPv4 address (NDA_DST). */
  dst: string;
  /**
   * Add a destination beside those the MAC has (`bridge fdb append`, for
   * flooding to several) instead of replacing them (`bridge fdb replace`,
   * flannel's). Default false.
   */
  append?: boolean;
}

/**
 * Requests a permanent FDB entry on a VXLAN device, in the device's own
 * table (NTF_SELF): `bridge fdb replace MAC dev DEV dst IP self permanent`
 * (or `append`).
 */
export function encodeNewFdb(req: FdbRequest): Buffer {
  const ifindex = checkedIfindex(req.ifindex, 'the FDB ifindex');
  return new MessageWriter()
    .raw(ndmsg(AF_BRIDGE, ifindex, NUD_PERMANENT, NTF_SELF))
    .attr(NDA_LLADDR, checkedMac(req.mac, 'the FDB MAC'))
    .attr(NDA_DST, checkedIpv4(req.dst, 'the FDB destination'))
    .finish(
      RTM_NEWNEIGH,
      NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (req.append ? NLM_F_APPEND : NLM_F_REPLACE),
    );
}
