// rtnetlink codec: builds RTM_GETLINK, RTM_GETSTATS and RTM_GETADDR requests
// and decodes RTM_NEWLINK, RTM_NEWSTATS and RTM_NEWADDR replies (routes,
// neighbours and the framing of multicast events: rtnl-events.ts). Pure functions over bytes, so they are tested from captured
// replies without root. Every length is checked against the bytes that are
// really there; a malformed reply throws NetlinkDecodeError, never reads out
// of bounds.
import ipaddr from 'ipaddr.js';
import { NetlinkDecodeError, PodnetSystemError } from '../errors.js';

const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWSTATS = 92;
const RTM_GETSTATS = 94;
const IF_STATS_MSG_LEN = 12;
const IFLA_STATS_LINK_64 = 1;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_OPERSTATE = 16;
const IFLA_LINKINFO = 18;
const IFLA_STATS64 = 23;
const IFLA_INFO_KIND = 1;

const align4 = (n: number): number => (n + 3) & ~3;

/** Field names of struct rtnl_link_stats64, in kernel order. */
export const linkStatsFields = [
  'rxPackets',
  'txPackets',
  'rxBytes',
  'txBytes',
  'rxErrors',
  'txErrors',
  'rxDropped',
  'txDropped',
  'multicast',
  'collisions',
  'rxLengthErrors',
  'rxOverErrors',
  'rxCrcErrors',
  'rxFrameErrors',
  'rxFifoErrors',
  'rxMissedErrors',
  'txAbortedErrors',
  'txCarrierErrors',
  'txFifoErrors',
  'txHeartbeatErrors',
  'txWindowErrors',
  'rxCompressed',
  'txCompressed',
  'rxNohandler',
  'rxOtherhostDropped',
] as const;

/** One counter name of {@link LinkStats}. */
export type LinkStatsField = (typeof linkStatsFields)[number];

/**
 * Every counter of the kernel's struct rtnl_link_stats64. Numbers lose
 * precision above 2^53 bytes; ask for `bigint` where that matters. Counters a
 * kernel does not report (older kernels lack the last ones) are 0.
 */
export type LinkStats<T extends number | bigint = number> = Record<LinkStatsField, T>;

/** Operational state of a link (RFC 2863, IFLA_OPERSTATE). */
export type OperState =
  | 'unknown'
  | 'notpresent'
  | 'down'
  | 'lowerlayerdown'
  | 'testing'
  | 'dormant'
  | 'up';

const operStates: readonly OperState[] = [
  'unknown',
  'notpresent',
  'down',
  'lowerlayerdown',
  'testing',
  'dormant',
  'up',
];

/** A network interface as the kernel describes it. */
export interface Link {
  /** Interface index, unique within its namespace. */
  index: number;
  /** Interface name. */
  name: string;
  /** MTU in bytes. */
  mtu: number;
  /** Hardware address as aa:bb:cc:dd:ee:ff ('' when the link has none). */
  mac: string;
  /** IFF_* flags (IFF_UP is 1, IFF_LOOPBACK is 8, ...). */
  flags: number;
  /** Whether IFF_UP is set. */
  up: boolean;
  /** Operational state. */
  operstate: OperState;
  /** Link kind (veth, bridge, dummy, ...), when it has one. */
  kind?: string;
  /** Index of the master (bridge) this link is enslaved to. */
  master?: number;
  /** Counters. */
  statistics: LinkStats;
}

/** Builds an RTM_GETLINK request: one link by name, or a dump of all. */
export function encodeGetLink(ifname?: string): Buffer {
  const nameBytes = ifname === undefined ? undefined : Buffer.from(`${ifname}\0`, 'utf8');
  const attrLen = nameBytes ? align4(4 + nameBytes.length) : 0;
  const total = NLMSG_HDRLEN + IFINFOMSG_LEN + attrLen;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(total, 0);
  b.writeUInt16LE(RTM_GETLINK, 4);
  b.writeUInt16LE(nameBytes ? NLM_F_REQUEST : NLM_F_REQUEST | NLM_F_DUMP, 6);
  // seq and pid are filled in by the native layer; ifinfomsg stays zero
  // (family AF_UNSPEC, index 0: look up by name).
  if (nameBytes) {
    const at = NLMSG_HDRLEN + IFINFOMSG_LEN;
    b.writeUInt16LE(4 + nameBytes.length, at);
    b.writeUInt16LE(IFLA_IFNAME, at + 2);
    nameBytes.copy(b, at + 4);
  }
  return b;
}

/**
 * Builds an RTM_GETSTATS request for the link with index INDEX, asking for
 * IFLA_STATS_LINK_64 alone: the counters without the rest of RTM_GETLINK's
 * reply (about 220 bytes instead of 1,400).
 */
export function encodeGetStats(index: number): Buffer {
  const total = NLMSG_HDRLEN + IF_STATS_MSG_LEN;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(total, 0);
  b.writeUInt16LE(RTM_GETSTATS, 4);
  b.writeUInt16LE(NLM_F_REQUEST, 6);
  // if_stats_msg: family AF_UNSPEC, the index, filter_mask.
  b.writeUInt32LE(index, NLMSG_HDRLEN + 4);
  b.writeUInt32LE(1 << (IFLA_STATS_LINK_64 - 1), NLMSG_HDRLEN + 8);
  return b;
}

/** A reply message: its type and where its payload lies in the buffer. */
export interface Message {
  type: number;
  start: number;
  end: number;
}

/**
 * The message at OFF, or undefined at the end of the reply (NLMSG_DONE, an
 * ack, or no bytes left). A kernel error (NLMSG_ERROR with a non-zero code)
 * is thrown as a PodnetSystemError.
 */
export function messageAt(
  buf: Buffer,
  off: number,
  len: number,
  what: string,
): Message | undefined {
  if (len > buf.length) throw new NetlinkDecodeError(`length ${len} exceeds buffer ${buf.length}`);
  if (off >= len) return undefined;
  if (len - off < NLMSG_HDRLEN) throw new NetlinkDecodeError(`truncated header at ${off}`);
  const mlen = buf.readUInt32LE(off);
  const type = buf.readUInt16LE(off + 4);
  if (mlen < NLMSG_HDRLEN || mlen > len - off) {
    throw new NetlinkDecodeError(`message length ${mlen} at ${off} out of bounds`);
  }
  if (type === NLMSG_DONE) return undefined;
  if (type === NLMSG_ERROR) {
    if (mlen < NLMSG_HDRLEN + 4) throw new NetlinkDecodeError('truncated NLMSG_ERROR');
    const code = buf.readInt32LE(off + NLMSG_HDRLEN);
    if (code !== 0) throw new PodnetSystemError(what, { errno: code, syscall: 'netlink' });
    return undefined;
  }
  return { type, start: off + NLMSG_HDRLEN, end: off + mlen };
}

/** Every message of a reply, in order. */
function messages(buf: Buffer, len: number, what: string): Message[] {
  const out: Message[] = [];
  for (let m = messageAt(buf, 0, len, what); m; m = messageAt(buf, align4(m.end), len, what))
    out.push(m);
  return out;
}

/**
 * Checks the reply to a request sent with NLM_F_ACK: resolves on the ack,
 * throws the kernel's error as a PodnetSystemError.
 */
export function checkAck(buf: Buffer, len: number, what: string): void {
  for (const m of messages(buf, len, what)) {
    throw new NetlinkDecodeError(`unexpected message type ${m.type} where an ack was due`);
  }
}

/**
 * Builds a LinkStats from the counters in kernel order at AT (what the
 * addon's stats fast path and sweep fill in), as one object literal: one
 * hidden class, no loop.
 */
export function statsFromCounters(c: Float64Array, at = 0): LinkStats {
  return {
    rxPackets: c[at]!,
    txPackets: c[at + 1]!,
    rxBytes: c[at + 2]!,
    txBytes: c[at + 3]!,
    rxErrors: c[at + 4]!,
    txErrors: c[at + 5]!,
    rxDropped: c[at + 6]!,
    txDropped: c[at + 7]!,
    multicast: c[at + 8]!,
    collisions: c[at + 9]!,
    rxLengthErrors: c[at + 10]!,
    rxOverErrors: c[at + 11]!,
    rxCrcErrors: c[at + 12]!,
    rxFrameErrors: c[at + 13]!,
    rxFifoErrors: c[at + 14]!,
    rxMissedErrors: c[at + 15]!,
    txAbortedErrors: c[at + 16]!,
    txCarrierErrors: c[at + 17]!,
    txFifoErrors: c[at + 18]!,
    txHeartbeatErrors: c[at + 19]!,
    txWindowErrors: c[at + 20]!,
    rxCompressed: c[at + 21]!,
    txCompressed: c[at + 22]!,
    rxNohandler: c[at + 23]!,
    rxOtherhostDropped: c[at + 24]!,
  };
}

function stats64Numbers(buf: Buffer, at: number, n: number): LinkStats {
  // Numbers are exact up to 2^53; past that a bigint read is needed.
  const c = new Float64Array(linkStatsFields.length);
  for (let i = 0; i < n; i++)
    c[i] = buf.readUInt32LE(at + i * 8) + buf.readUInt32LE(at + i * 8 + 4) * 0x1_0000_0000;
  return statsFromCounters(c);
}

/** Decodes a struct rtnl_link_stats64 payload of `len` bytes at `at`. */
export function decodeStats64(
  buf: Buffer,
  at: number,
  len: number,
  bigint: true,
): LinkStats<bigint>;
export function decodeStats64(
  buf: Buffer,
  at: number,
  len: number,
  bigint?: false,
): LinkStats<number>;
export function decodeStats64(
  buf: Buffer,
  at: number,
  len: number,
  bigint?: boolean,
): LinkStats<number | bigint>;
export function decodeStats64(
  buf: Buffer,
  at: number,
  len: number,
  bigint = false,
): LinkStats<number | bigint> {
  // The struct has only grown at its end; 23 counters have been there since
  // Linux 4.x, so anything shorter is not a stats64 payload.
  if (len < 23 * 8 || at + len > buf.length) {
    throw new NetlinkDecodeError(`IFLA_STATS64 of ${len} bytes`);
  }
  const n = Math.min(linkStatsFields.length, Math.floor(len / 8));
  if (!bigint) return stats64Numbers(buf, at, n);
  const out = {} as Record<LinkStatsField, bigint>;
  for (let i = 0; i < linkStatsFields.length; i++) {
    out[linkStatsFields[i]!] = i < n ? buf.readBigUInt64LE(at + i * 8) : 0n;
  }
  return out;
}

// RTM_DELLINK (17), an event, carries the same ifinfomsg and attributes;
// a statistics read takes RTM_NEWLINK only, as the C++ decoder does.
function ifinfoStart(m: Message, orDelete = false): number {
  if (m.type !== RTM_NEWLINK && !(orDelete && m.type === RTM_NEWLINK + 1))
    throw new NetlinkDecodeError(`unexpected message type ${m.type}`);
  if (m.end - m.start < IFINFOMSG_LEN) throw new NetlinkDecodeError('truncated ifinfomsg');
  return m.start;
}

/** Calls `fn(type, at, len)` for each attribute in [start, end), bounds-checked. */
export function eachAttr(
  buf: Buffer,
  start: number,
  end: number,
  fn: (type: number, at: number, len: number) => void,
): void {
  let off = start;
  while (end - off >= 4) {
    const alen = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff; // strip NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (alen < 4 || alen > end - off)
      throw new NetlinkDecodeError(`attribute ${type} length ${alen} out of bounds`);
    fn(type, off + 4, alen - 4);
    off += align4(alen);
  }
}

function cString(buf: Buffer, at: number, len: number): string {
  const nul = buf.indexOf(0, at);
  return buf.toString('utf8', at, nul >= 0 && nul < at + len ? nul : at + len);
}

/** A u32 attribute, or a NetlinkDecodeError naming NAME when it is shorter. */
export function u32(buf: Buffer, at: number, len: number, name: string): number {
  if (len < 4) throw new NetlinkDecodeError(`${name} of ${len} bytes`);
  return buf.readUInt32LE(at);
}

/** One RTM_NEWLINK (or RTM_DELLINK) message. */
export function decodeLink(buf: Buffer, m: Message): Link {
  const s = ifinfoStart(m, true);
  const index = buf.readInt32LE(s + 4);
  const flags = buf.readUInt32LE(s + 8);
  const link: Link = {
    index,
    name: '',
    mtu: 0,
    mac: '',
    flags,
    up: (flags & 1) !== 0,
    operstate: 'unknown',
    statistics: stats64Numbers(buf, 0, 0), // all 0 unless IFLA_STATS64 follows
  };
  eachAttr(buf, s + IFINFOMSG_LEN, m.end, (type, at, len) => {
    switch (type) {
      case IFLA_IFNAME:
        link.name = cString(buf, at, len);
        break;
      case IFLA_MTU:
        link.mtu = u32(buf, at, len, 'IFLA_MTU');
        break;
      case IFLA_ADDRESS:
        link.mac = Array.from(buf.subarray(at, at + len), (x) =>
          x.toString(16).padStart(2, '0'),
        ).join(':');
        break;
      case IFLA_OPERSTATE:
        if (len < 1) throw new NetlinkDecodeError('empty IFLA_OPERSTATE');
        link.operstate = operStates[buf[at]!] ?? 'unknown';
        break;
      case IFLA_MASTER:
        link.master = u32(buf, at, len, 'IFLA_MASTER');
        break;
      case IFLA_STATS64:
        link.statistics = decodeStats64(buf, at, len);
        break;
      case IFLA_LINKINFO:
        eachAttr(buf, at, at + len, (t, a, l) => {
          if (t === IFLA_INFO_KIND) link.kind = cString(buf, a, l);
        });
        break;
    }
  });
  if (link.name === '') throw new NetlinkDecodeError(`link ${index} has no IFLA_IFNAME`);
  return link;
}

/** The index of the link in a single-link RTM_GETLINK reply. */
export function linkIndexOf(buf: Buffer, len: number, what: string): number {
  const m = messageAt(buf, 0, len, what);
  if (!m) throw new NetlinkDecodeError('no RTM_NEWLINK in reply');
  return buf.readInt32LE(ifinfoStart(m) + 4);
}

/** Decodes an RTM_GETLINK dump reply into links, in kernel order. */
export function decodeLinks(buf: Buffer, len = buf.length, what = 'listing links'): Link[] {
  const out: Link[] = [];
  for (const m of messages(buf, len, what)) out.push(decodeLink(buf, m));
  return out;
}

/**
 * Decodes only the statistics of a single-link RTM_GETLINK or RTM_GETSTATS
 * reply (the hot path: no other attribute is turned into JS values).
 */
export function decodeLinkStats(
  buf: Buffer,
  len: number,
  what: string,
  bigint: true,
): LinkStats<bigint>;
export function decodeLinkStats(
  buf: Buffer,
  len: number,
  what: string,
  bigint?: boolean,
): LinkStats;
export function decodeLinkStats(
  buf: Buffer,
  len: number,
  what: string,
  bigint = false,
): LinkStats<number | bigint> {
  // The hot path of every statistics read: the first message only, plain
  // loops, no closures; the same bounds checks as the general decoder. An
  // RTM_NEWLINK carries IFLA_STATS64 among its attributes, an RTM_NEWSTATS
  // (the reply to RTM_GETSTATS) IFLA_STATS_LINK_64.
  const m = messageAt(buf, 0, len, what);
  if (!m) throw new NetlinkDecodeError('no RTM_NEWLINK or RTM_NEWSTATS in reply');
  let off: number;
  let want: number;
  if (m.type === RTM_NEWSTATS) {
    if (m.end - m.start < IF_STATS_MSG_LEN) throw new NetlinkDecodeError('truncated if_stats_msg');
    off = m.start + IF_STATS_MSG_LEN;
    want = IFLA_STATS_LINK_64;
  } else {
    off = ifinfoStart(m) + IFINFOMSG_LEN;
    want = IFLA_STATS64;
  }
  while (m.end - off >= 4) {
    const alen = buf.readUInt16LE(off);
    if (alen < 4 || alen > m.end - off) {
      throw new NetlinkDecodeError(`attribute length ${alen} at ${off} out of bounds`);
    }
    if ((buf.readUInt16LE(off + 2) & 0x3fff) === want) {
      return decodeStats64(buf, off + 4, alen - 4, bigint);
    }
    off += align4(alen);
  }
  throw new NetlinkDecodeError(
    m.type === RTM_NEWSTATS
      ? 'RTM_NEWSTATS without IFLA_STATS_LINK_64'
      : 'RTM_NEWLINK without IFLA_STATS64',
  );
}

const RTM_NEWADDR = 20;
const RTM_GETADDR = 22;
const IFADDRMSG_LEN = 8;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_FLAGS = 8;

/** An interface address as the kernel describes it (RTM_NEWADDR). */
export interface InterfaceAddress {
  /** Index of the link it is on. */
  index: number;
  /** 4 or 6. */
  family: 4 | 6;
  /** The address itself (IFA_LOCAL where the kernel sends one, as for IPv4; else IFA_ADDRESS). */
  address: string;
  /** Prefix length of its subnet. */
  prefixLength: number;
  /** RT_SCOPE_*: 0 global (universe), 200 site, 253 link, 254 host. */
  scope: number;
  /** IFA_F_* flags (0x40 tentative, 0x20 deprecated, 0x08 DAD failed, ...). */
  flags: number;
  /** IPv4 label (e.g. `eth0:1`), when the kernel sends one. */
  label?: string;
}

/** Builds an RTM_GETADDR dump request for every address of every family. */
export function encodeGetAddr(): Buffer {
  const total = NLMSG_HDRLEN + IFADDRMSG_LEN;
  const b = Buffer.alloc(total);
  b.writeUInt32LE(total, 0);
  b.writeUInt16LE(RTM_GETADDR, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  // ifaddrmsg stays zero: family AF_UNSPEC, every link.
  return b;
}

/** One RTM_NEWADDR (or RTM_DELADDR) message; undefined for a family other than IPv4 and IPv6. */
export function decodeAddress(buf: Buffer, m: Message): InterfaceAddress | undefined {
  if (m.type !== RTM_NEWADDR && m.type !== RTM_NEWADDR + 1)
    throw new NetlinkDecodeError(`unexpected message type ${m.type}`);
  if (m.end - m.start < IFADDRMSG_LEN) throw new NetlinkDecodeError('truncated ifaddrmsg');
  const familyByte = buf[m.start]!;
  // Other families (none today on an inet dump) are not this type's business.
  if (familyByte !== 2 && familyByte !== 10) return undefined;
  const family = familyByte === 2 ? 4 : 6;
  const size = family === 4 ? 4 : 16;
  let local: Buffer | undefined;
  let address: Buffer | undefined;
  let flags: number = buf[m.start + 2]!;
  let label: string | undefined;
  eachAttr(buf, m.start + IFADDRMSG_LEN, m.end, (type, at, len) => {
    switch (type) {
      case IFA_ADDRESS:
      case IFA_LOCAL:
        if (len !== size) throw new NetlinkDecodeError(`IPv${family} address of ${len} bytes`);
        if (type === IFA_LOCAL) local = buf.subarray(at, at + len);
        else address = buf.subarray(at, at + len);
        break;
      case IFA_FLAGS:
        // The full 32 bits; ifa_flags holds only the low 8.
        flags = u32(buf, at, len, 'IFA_FLAGS');
        break;
      case IFA_LABEL:
        label = cString(buf, at, len);
        break;
    }
  });
  const bytes = local ?? address;
  if (bytes === undefined) throw new NetlinkDecodeError('an address message without an address');
  return {
    index: buf.readUInt32LE(m.start + 4),
    family,
    address: ipaddr.fromByteArray([...bytes]).toString(),
    prefixLength: buf[m.start + 1]!,
    scope: buf[m.start + 3]!,
    flags,
    ...(label === undefined ? {} : { label }),
  };
}

/** Decodes an RTM_GETADDR dump reply into addresses, in kernel order. */
export function decodeAddresses(
  buf: Buffer,
  len = buf.length,
  what = 'listing addresses',
): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const m of messages(buf, len, what)) {
    const a = decodeAddress(buf, m);
    if (a) out.push(a);
  }
  return out;
}
