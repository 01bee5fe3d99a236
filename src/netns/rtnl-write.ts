// rtnetlink requests that change links and addresses: create a veth pair,
// set a link up, add an address, delete a link. What podnet itself needs
// (a namespace's loopback up) and what test topologies need, without
// spawning iproute2. The kernel answers each with an ack (NLMSG_ERROR 0).
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { MessageWriter } from './nlmsg.js';
import { ipv6Bytes } from './sockaddr.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFF_UP = 1;
const AF_INET = 2;
const AF_INET6 = 10;

function ifinfomsg(flags = 0, change = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(change, 12);
  return b;
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
}

/** Requests a new veth pair (fails with EEXIST if a name is taken). */
export function encodeNewVeth(req: VethRequest): Buffer {
  const w = new MessageWriter().raw(ifinfomsg()).str(IFLA_IFNAME, req.name);
  if (req.mtu !== undefined) w.u32(IFLA_MTU, req.mtu);
  w.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, 'veth').begin(IFLA_INFO_DATA).begin(VETH_INFO_PEER);
  w.raw(ifinfomsg()).str(IFLA_IFNAME, req.peerName);
  if (req.mtu !== undefined) w.u32(IFLA_MTU, req.mtu);
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

/** Requests an address on the link with index `ifindex`. */
export function encodeNewAddr(ifindex: number, cidr: string): Buffer {
  const { family, bytes, prefix } = parseCidr(cidr);
  const msg = Buffer.alloc(8);
  msg[0] = family === 4 ? AF_INET : AF_INET6;
  msg[1] = prefix;
  msg.writeUInt32LE(ifindex, 4);
  return new MessageWriter()
    .raw(msg)
    .attr(IFA_LOCAL, bytes)
    .attr(IFA_ADDRESS, bytes)
    .finish(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
}
