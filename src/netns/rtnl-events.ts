// rtnetlink codec, part two: routes and neighbours, the dump requests a
// watch lists the namespace with, and the framing of what a watch socket
// reads (multicast events and dump replies, interleaved). Pure functions
// over bytes, tested from captured datagrams; every length is checked
// against the bytes that are there, as in rtnl.ts.
import ipaddr from 'ipaddr.js';
import { NetlinkDecodeError, PodnetSystemError } from '../errors.js';
import {
  decodeAddress,
  decodeLink,
  eachAttr,
  encodeGetAddr,
  encodeGetLink,
  type InterfaceAddress,
  type Link,
  type Message,
  u32,
} from './rtnl.js';

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
/** Set on dump messages when the table changed during the dump. */
const NLM_F_DUMP_INTR = 0x10;
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;
const RTMSG_LEN = 12;
const NDMSG_LEN = 12;
const AF_INET = 2;
const AF_INET6 = 10;
// ifi_change of an RTM_NEWLINK the kernel sends when a link appears in the
// namespace (registered, or moved in): ~0U. Later changes carry the flags
// that changed.
const IFI_CHANGE_NEW = 0xffff_ffff;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_TABLE = 15;
const NDA_DST = 1;
const NDA_LLADDR = 2;

const align4 = (n: number): number => (n + 3) & ~3;

/** What a watch can follow: the multicast groups of each, and its dump. */
export type WatchKind = 'links' | 'addresses' | 'routes' | 'neighbors';

/** The RTNLGRP_* groups of each kind: IPv4 and IPv6 each have their own. */
export const watchGroups: Readonly<Record<WatchKind, readonly number[]>> = {
  links: [1], // RTNLGRP_LINK
  addresses: [5, 9], // RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR
  routes: [7, 11], // RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE
  neighbors: [3], // RTNLGRP_NEIGH
};

/** A route as the kernel describes it (RTM_NEWROUTE). */
export interface Route {
  /** 4 or 6. */
  family: 4 | 6;
  /** The destination network's address (`0.0.0.0` or `::` for a default route). */
  destination: string;
  /** Prefix length of the destination (0 for a default route). */
  prefixLength: number;
  /** The next hop, for a route through a gateway. */
  gateway?: string;
  /** Index of the outgoing link. */
  index?: number;
  /** The preferred source address (RTA_PREFSRC). */
  source?: string;
  /** Routing table (254 main, 255 local). */
  table: number;
  /** RTPROT_*: who installed it (2 kernel, 3 boot, 4 static, ...). */
  protocol: number;
  /** RT_SCOPE_*: 0 universe, 253 link, 254 host. */
  scope: number;
  /** RTN_*: 1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable, ... */
  type: number;
  /** The metric (RTA_PRIORITY). */
  priority?: number;
}

/** A neighbour (ARP or NDP) entry as the kernel describes it (RTM_NEWNEIGH). */
export interface Neighbor {
  /** 4 (ARP) or 6 (NDP). */
  family: 4 | 6;
  /** Index of the link it was learnt on. */
  index: number;
  /** The neighbour's IP address. */
  address: string;
  /** Its hardware address as aa:bb:cc:dd:ee:ff, when known. */
  mac?: string;
  /** NUD_* state bits (0x02 reachable, 0x04 stale, 0x20 failed, 0x80 permanent, ...). */
  state: number;
  /** NTF_* flags. */
  flags: number;
}

/**
 * One event of `ns.watch()`. `-added` is the kernel's RTM_NEW*: for
 * addresses, routes and neighbours it also reports a change of one that
 * exists (a neighbour's state, an address's flags); links tell the two apart
 * (`link-changed`). A listing (with `listExisting`, and after a `resync`)
 * sends what exists as `-added` events and ends with `synced`.
 */
export type NetlinkEvent =
  | { type: 'link-added' | 'link-changed' | 'link-removed'; link: Link }
  | { type: 'address-added' | 'address-removed'; address: InterfaceAddress }
  | { type: 'route-added' | 'route-removed'; route: Route }
  | { type: 'neighbor-added' | 'neighbor-removed'; neighbor: Neighbor }
  /**
   * The socket overflowed (ENOBUFS) and events were lost: a listing of the
   * current state follows, up to the next `synced`. Events between the two
   * are the kernel's, in order; what is not listed no longer exists.
   */
  | { type: 'resync' }
  /** The end of a listing: what follows are live events. */
  | { type: 'synced' };

/** Builds the dump request of one kind, with sequence number SEQ. */
export function encodeDump(kind: WatchKind, seq: number): Buffer {
  let b: Buffer;
  if (kind === 'links') b = encodeGetLink();
  else if (kind === 'addresses') b = encodeGetAddr();
  else {
    // rtmsg and ndmsg are both 12 bytes; zero: family AF_UNSPEC, all tables.
    b = Buffer.alloc(NLMSG_HDRLEN + (kind === 'routes' ? RTMSG_LEN : NDMSG_LEN));
    b.writeUInt32LE(b.length, 0);
    b.writeUInt16LE(kind === 'routes' ? RTM_GETROUTE : RTM_GETNEIGH, 4);
    b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  }
  b.writeUInt32LE(seq, 8);
  return b;
}

/** One message of a datagram with its header's fields; `start`..`end` is its payload. */
export interface Frame extends Message {
  flags: number;
  seq: number;
  /** nlmsg_pid: the port the message answers (a reply), or caused it (an event). */
  pid: number;
}

/** Splits one datagram into its messages (NLMSG_DONE and NLMSG_ERROR included), bounds-checked. */
export function framesOf(buf: Buffer, len: number): Frame[] {
  if (len > buf.length) throw new NetlinkDecodeError(`length ${len} exceeds buffer ${buf.length}`);
  const out: Frame[] = [];
  let off = 0;
  while (off < len) {
    if (len - off < NLMSG_HDRLEN) throw new NetlinkDecodeError(`truncated header at ${off}`);
    const mlen = buf.readUInt32LE(off);
    if (mlen < NLMSG_HDRLEN || mlen > len - off) {
      throw new NetlinkDecodeError(`message length ${mlen} at ${off} out of bounds`);
    }
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      start: off + NLMSG_HDRLEN,
      end: off + mlen,
    });
    off += align4(mlen);
  }
  return out;
}

/** Whether a frame ends a dump: NLMSG_DONE, or NLMSG_ERROR (then see {@link errorOf}). */
export function endsDump(f: Frame): boolean {
  return f.type === NLMSG_DONE || f.type === NLMSG_ERROR;
}

/** Whether the kernel marked a dump frame as interrupted by a change (the dump may have missed some). */
export function interrupted(f: Frame): boolean {
  return (f.flags & NLM_F_DUMP_INTR) !== 0;
}

/** The error code of an NLMSG_ERROR frame (negative errno, 0 for an ack); 0 for any other. */
export function errorOf(buf: Buffer, f: Frame): number {
  if (f.type !== NLMSG_ERROR) return 0;
  if (f.end - f.start < 4) throw new NetlinkDecodeError('truncated NLMSG_ERROR');
  return buf.readInt32LE(f.start);
}

function ip(buf: Buffer, at: number, len: number, family: 4 | 6, name: string): string {
  if (len !== (family === 4 ? 4 : 16)) {
    throw new NetlinkDecodeError(`${name} of ${len} bytes in an IPv${family} message`);
  }
  return ipaddr.fromByteArray([...buf.subarray(at, at + len)]).toString();
}

function familyOf(byte: number): 4 | 6 | undefined {
  return byte === AF_INET ? 4 : byte === AF_INET6 ? 6 : undefined;
}

/**
 * Every route of a whole RTM_GETROUTE dump reply (as a kept socket's
 * request returns it), in kernel order; a kernel error is thrown.
 */
export function decodeRoutes(buf: Buffer, len = buf.length, what = 'listing routes'): Route[] {
  const out: Route[] = [];
  for (const f of framesOf(buf, len)) {
    const err = errorOf(buf, f);
    if (err !== 0) throw new PodnetSystemError(what, { errno: err, syscall: 'netlink' });
    if (endsDump(f) || f.type !== RTM_NEWROUTE) continue;
    const r = decodeRoute(buf, f);
    if (r) out.push(r);
  }
  return out;
}

/** One RTM_NEWROUTE / RTM_DELROUTE message; undefined for a family other than IPv4 and IPv6 (multicast routing, MPLS). */
export function decodeRoute(buf: Buffer, m: Message): Route | undefined {
  if (m.end - m.start < RTMSG_LEN) throw new NetlinkDecodeError('truncated rtmsg');
  const family = familyOf(buf[m.start]!);
  if (family === undefined) return undefined;
  const route: Route = {
    family,
    destination: family === 4 ? '0.0.0.0' : '::',
    prefixLength: buf[m.start + 1]!,
    table: buf[m.start + 4]!,
    protocol: buf[m.start + 5]!,
    scope: buf[m.start + 6]!,
    type: buf[m.start + 7]!,
  };
  eachAttr(buf, m.start + RTMSG_LEN, m.end, (type, at, len) => {
    switch (type) {
      case RTA_DST:
        route.destination = ip(buf, at, len, family, 'RTA_DST');
        break;
      case RTA_GATEWAY:
        route.gateway = ip(buf, at, len, family, 'RTA_GATEWAY');
        break;
      case RTA_PREFSRC:
        route.source = ip(buf, at, len, family, 'RTA_PREFSRC');
        break;
      case RTA_OIF:
        route.index = u32(buf, at, len, 'RTA_OIF');
        break;
      case RTA_PRIORITY:
        route.priority = u32(buf, at, len, 'RTA_PRIORITY');
        break;
      case RTA_TABLE:
        // rtm_table holds only 8 bits; RTA_TABLE the full table id.
        route.table = u32(buf, at, len, 'RTA_TABLE');
        break;
    }
  });
  return route;
}

/** One RTM_NEWNEIGH / RTM_DELNEIGH message; undefined for a family other than IPv4 and IPv6 (a bridge's fdb). */
export function decodeNeighbor(buf: Buffer, m: Message): Neighbor | undefined {
  if (m.end - m.start < NDMSG_LEN) throw new NetlinkDecodeError('truncated ndmsg');
  const family = familyOf(buf[m.start]!);
  if (family === undefined) return undefined;
  let address: string | undefined;
  let mac: string | undefined;
  eachAttr(buf, m.start + NDMSG_LEN, m.end, (type, at, len) => {
    if (type === NDA_DST) address = ip(buf, at, len, family, 'NDA_DST');
    else if (type === NDA_LLADDR) {
      mac = Array.from(buf.subarray(at, at + len), (x) => x.toString(16).padStart(2, '0')).join(
        ':',
      );
    }
  });
  if (address === undefined) throw new NetlinkDecodeError('a neighbour message without NDA_DST');
  return {
    family,
    index: buf.readInt32LE(m.start + 4),
    address,
    ...(mac === undefined ? {} : { mac }),
    state: buf.readUInt16LE(m.start + 8),
    flags: buf[m.start + 10]!,
  };
}

/** The kind of change a message reports, or undefined for any other message. */
export function kindOf(type: number): WatchKind | undefined {
  switch (type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return 'links';
    case RTM_NEWADDR:
    case RTM_DELADDR:
      return 'addresses';
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      return 'routes';
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH:
      return 'neighbors';
    default:
      return undefined;
  }
}

/**
 * The event a message reports, or undefined when it is none podnet types
 * (another message type, another address family). LISTED: the message is
 * part of a dump, so what it describes exists (always `-added`).
 */
export function eventOf(buf: Buffer, f: Frame, listed: boolean): NetlinkEvent | undefined {
  switch (f.type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      const link = decodeLink(buf, f);
      if (f.type === RTM_DELLINK) return { type: 'link-removed', link };
      // decodeLink checked that the ifinfomsg is there.
      const added = listed || buf.readUInt32LE(f.start + 12) === IFI_CHANGE_NEW;
      return { type: added ? 'link-added' : 'link-changed', link };
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      const address = decodeAddress(buf, f);
      if (!address) return undefined;
      return { type: f.type === RTM_NEWADDR ? 'address-added' : 'address-removed', address };
    }
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      const route = decodeRoute(buf, f);
      if (!route) return undefined;
      return { type: f.type === RTM_NEWROUTE ? 'route-added' : 'route-removed', route };
    }
    case RTM_NEWNEIGH:
    case RTM_DELNEIGH: {
      const neighbor = decodeNeighbor(buf, f);
      if (!neighbor) return undefined;
      return { type: f.type === RTM_NEWNEIGH ? 'neighbor-added' : 'neighbor-removed', neighbor };
    }
    default:
      return undefined;
  }
}
