// Traffic control requests: a netem qdisc at a device's root (replaced or
// deleted), the clsact qdisc, a cls_bpf filter in direct-action mode on one
// of its hooks, the filter's removal, and a dump of a namespace's qdiscs
// with their statistics. What podnet/testing impairs a link with: netem
// where the kernel has it, else the delay line (clsact + cls_bpf), and the
// dump an impairment's counters are read from when netem does the work.
// Each is what `tc` sends for the same command (test/unit/netns/
// rtnl-tc.test.ts and rtnl-tc-netem.test.ts have its bytes).
import { NetlinkDecodeError } from '../errors.js';
import { MessageWriter } from './nlmsg.js';
import { eachAttr, messageAt } from './rtnl.js';

const RTM_NEWQDISC = 36;
const RTM_DELQDISC = 37;
const RTM_GETQDISC = 38;
const RTM_NEWTFILTER = 44;
const RTM_DELTFILTER = 45;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_STATS2 = 7;
const TCA_STATS_BASIC = 1;
const TCA_STATS_QUEUE = 3;
const TCA_BPF_FD = 6;
const TCA_BPF_NAME = 7;
const TCA_BPF_FLAGS = 8;
const TCA_BPF_FLAG_ACT_DIRECT = 1;
const TCA_NETEM_RATE = 6;
const TCA_NETEM_RATE64 = 8;
const TCA_NETEM_LATENCY64 = 10;
const TCA_NETEM_JITTER64 = 11;
/** The root of a device's qdisc tree: a qdisc there is the device's own. */
const TC_H_ROOT = 0xffffffff;
/** tc's default queue limit of netem, in packets. */
const NETEM_DEFAULT_LIMIT = 1000;
/** clsact's (and ingress's) parent and handle: TC_H_CLSACT, and ffff:0. */
const TC_H_CLSACT = 0xfffffff1;
const CLSACT_HANDLE = 0xffff0000;
/** The minor numbers of clsact's two hooks (TC_H_MIN_INGRESS, TC_H_MIN_EGRESS). */
const HOOK = { ingress: 0xfff2, egress: 0xfff3 } as const;
/** htons(ETH_P_ALL): a filter for every protocol, in tcm_info's low 16 bits. */
const ETH_P_ALL_BE = 0x0300;
const TCMSG_LEN = 20;
const U32_MAX = 0xffffffff;

/** A clsact hook: frames arriving at a device, or leaving it. */
export type ClsactHook = keyof typeof HOOK;

// struct tcmsg (linux/rtnetlink.h).
function tcmsg(ifindex: number, handle: number, parent: number, info = 0): Buffer {
  const b = Buffer.alloc(TCMSG_LEN);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}

// One attribute as bytes, padded, for a TCA_OPTIONS built outside the
// MessageWriter: netem's is a struct followed by attributes, not a nest, and
// cls_bpf's a nest sent without NLA_F_NESTED, as tc sends both.
function nla(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc((4 + payload.length + 3) & ~3);
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** What a netem qdisc does to the packets leaving a link. */
export interface NetemRequest {
  /** Added delay, in microseconds. */
  delayUs?: number;
  /** Random variation of the delay (+/-), in microseconds. */
  jitterUs?: number;
  /** Probability of dropping a packet, in percent (0-100). */
  lossPercent?: number;
  /** Rate limit, in bytes per second. */
  rateBytes?: number;
  /** Queue limit, in packets (default tc's 1000). */
  limit?: number;
}

function s64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(v);
  return b;
}

/**
 * Requests a netem qdisc at the root of the link with index `ifindex`,
 * replacing whatever root qdisc it has (one request: the old discipline
 * gives way to the new at once, never a moment without either). Times go
 * into struct tc_netem_qopt in psched ticks, `ticksPerUs` of them a
 * microsecond (see {@link pschedTicksPerUs}), as tc does; a time too long
 * for 32 bits of ticks goes in TCA_NETEM_LATENCY64 / JITTER64 in
 * nanoseconds instead, a rate of 2^32 bytes/s or more in TCA_NETEM_RATE64.
 * `exclusive` makes it fail with EEXIST over an existing qdisc, as
 * `tc qdisc add` does.
 */
export function encodeNetemQdisc(
  ifindex: number,
  req: NetemRequest,
  ticksPerUs: number,
  opts: { exclusive?: boolean } = {},
): Buffer {
  const ticks = (us: number): number => Math.round(us * ticksPerUs);
  const latency = ticks(req.delayUs ?? 0);
  const jitter = ticks(req.jitterUs ?? 0);
  const qopt = Buffer.alloc(24);
  qopt.writeUInt32LE(Math.min(latency, U32_MAX), 0);
  qopt.writeUInt32LE(req.limit ?? NETEM_DEFAULT_LIMIT, 4);
  qopt.writeUInt32LE(Math.round(((req.lossPercent ?? 0) / 100) * U32_MAX), 8);
  qopt.writeUInt32LE(Math.min(jitter, U32_MAX), 20);
  const parts: Buffer[] = [qopt];
  if (latency > U32_MAX)
    parts.push(nla(TCA_NETEM_LATENCY64, s64(BigInt(Math.round((req.delayUs ?? 0) * 1000)))));
  if (jitter > U32_MAX)
    parts.push(nla(TCA_NETEM_JITTER64, s64(BigInt(Math.round((req.jitterUs ?? 0) * 1000)))));
  if (req.rateBytes !== undefined) {
    const rate = Buffer.alloc(16); // struct tc_netem_rate: rate, overheads 0
    rate.writeUInt32LE(Math.min(req.rateBytes, U32_MAX), 0);
    parts.push(nla(TCA_NETEM_RATE, rate));
    if (req.rateBytes >= U32_MAX) {
      const r64 = Buffer.alloc(8);
      r64.writeBigUInt64LE(BigInt(req.rateBytes));
      parts.push(nla(TCA_NETEM_RATE64, r64));
    }
  }
  const flags = opts.exclusive ? NLM_F_EXCL : NLM_F_REPLACE;
  return new MessageWriter()
    .raw(tcmsg(ifindex, 0, TC_H_ROOT))
    .str(TCA_KIND, 'netem')
    .attr(TCA_OPTIONS, Buffer.concat(parts))
    .finish(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | flags);
}

/** Requests the root qdisc of a link be deleted (the kernel's default comes back). */
export function encodeDelRootQdisc(ifindex: number): Buffer {
  return new MessageWriter()
    .raw(tcmsg(ifindex, 0, TC_H_ROOT))
    .finish(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK);
}

/**
 * psched ticks per microsecond from /proc/net/psched's four hex words
 * (tick-to-us, us-to-tick, clock resolution, HZ), as iproute2's tc_core
 * computes it; undefined when the text is not that.
 */
export function pschedTicksPerUs(text: string): number | undefined {
  const words = text.trim().split(/\s+/);
  if (words.length < 3 || !words.every((w) => /^[0-9a-f]{1,8}$/i.test(w))) return undefined;
  const [t2us, us2t, res] = words.slice(0, 3).map((w) => Number.parseInt(w, 16)) as [
    number,
    number,
    number,
  ];
  if (t2us === 0 || us2t === 0 || res === 0) return undefined;
  // A kernel with a nanosecond clock resolution advertises a tick-to-us
  // multiplier of 1000 that means 1 (tc_core.c's "compatibility hack").
  const tickToUs = res === 1_000_000_000 ? us2t : t2us;
  return (tickToUs / us2t) * (res / 1_000_000);
}

/**
 * Requests a clsact qdisc on a device: the two hooks (ingress and egress)
 * that filters attach to, doing nothing until one does. Exclusive, as
 * `tc qdisc add dev X clsact`: EEXIST when the device has a clsact already,
 * or an ingress qdisc (they share the handle ffff:).
 */
export function encodeClsactQdisc(ifindex: number): Buffer {
  return new MessageWriter()
    .raw(tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT))
    .str(TCA_KIND, 'clsact')
    .finish(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE);
}

/** Requests a device's clsact qdisc be deleted, with every filter on its hooks (`tc qdisc del dev X clsact`). */
export function encodeDelClsactQdisc(ifindex: number): Buffer {
  return new MessageWriter()
    .raw(tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT))
    .str(TCA_KIND, 'clsact')
    .finish(RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK);
}

/** Where a filter sits: device, clsact hook, priority and handle (one filter of one protocol: all). */
export interface FilterPlace {
  ifindex: number;
  hook: ClsactHook;
  /** Its priority (1 to 65535; lower runs first). */
  prio: number;
  /** Its handle among the filters of that priority. */
  handle: number;
}

/** A cls_bpf filter: where it goes, and the program it runs. */
export interface BpfFilterRequest extends FilterPlace {
  /** The program's fd in this process (BPF_PROG_TYPE_SCHED_CLS). */
  fd: number;
  /** The name `tc filter show` lists it by. */
  name: string;
}

/**
 * Requests a cls_bpf filter in direct-action mode (the program's return
 * value is the verdict: TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT, ...) on a
 * clsact hook, for every protocol. Exclusive, as `tc filter add`: EEXIST
 * when a filter of that priority and handle is there. The kernel takes
 * its own reference to the program: the fd may be closed after the ack.
 */
export function encodeBpfFilter(req: BpfFilterRequest): Buffer {
  const name = Buffer.from(`${req.name}\0`, 'utf8');
  return new MessageWriter()
    .raw(tcmsg(req.ifindex, req.handle, placeParent(req), placeInfo(req)))
    .str(TCA_KIND, 'bpf')
    .attr(
      TCA_OPTIONS,
      Buffer.concat([
        nla(TCA_BPF_FD, u32le(req.fd)),
        nla(TCA_BPF_NAME, name),
        nla(TCA_BPF_FLAGS, u32le(TCA_BPF_FLAG_ACT_DIRECT)),
      ]),
    )
    .finish(RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE);
}

/** Requests the cls_bpf filter at `place` be deleted (ENOENT when it is not there). */
export function encodeDelBpfFilter(place: FilterPlace): Buffer {
  return new MessageWriter()
    .raw(tcmsg(place.ifindex, place.handle, placeParent(place), placeInfo(place)))
    .str(TCA_KIND, 'bpf')
    .finish(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK);
}

function placeParent(p: FilterPlace): number {
  return ((TC_H_CLSACT & 0xffff0000) | HOOK[p.hook]) >>> 0;
}

function placeInfo(p: FilterPlace): number {
  return ((p.prio << 16) | ETH_P_ALL_BE) >>> 0;
}

/**
 * Requests every qdisc of the namespace, with statistics. tc names the
 * device it shows (`ifindex`), but the kernel dumps every device's: the
 * caller picks its own from the reply.
 */
export function encodeGetQdiscs(ifindex = 0): Buffer {
  return new MessageWriter()
    .raw(tcmsg(ifindex, 0, 0))
    .finish(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP);
}

/** One qdisc of a dump and its counters (TCA_STATS2's basic and queue statistics). */
export interface Qdisc {
  ifindex: number;
  /** Its handle (major:minor as one number; 0xffff0000 for clsact and ingress). */
  handle: number;
  /** Its parent (0xffffffff at the root, 0xfffffff1 for clsact and ingress). */
  parent: number;
  kind: string;
  /** Bytes and packets it has sent on. */
  bytes: number;
  packets: number;
  /** Packets it dropped (netem counts its losses here too). */
  drops: number;
  /** Packets queued in it now. */
  qlen: number;
  overlimits: number;
  requeues: number;
}

/** Decodes an RTM_GETQDISC dump, in kernel order; a kernel error is thrown as PodnetSystemError. */
export function decodeQdiscs(buf: Buffer, len = buf.length, what = 'listing qdiscs'): Qdisc[] {
  const out: Qdisc[] = [];
  for (let m = messageAt(buf, 0, len, what); m; m = messageAt(buf, (m.end + 3) & ~3, len, what)) {
    if (m.type !== RTM_NEWQDISC)
      throw new NetlinkDecodeError(`unexpected message type ${m.type} in a qdisc dump`);
    if (m.end - m.start < TCMSG_LEN) throw new NetlinkDecodeError('truncated tcmsg');
    const q: Qdisc = {
      ifindex: buf.readInt32LE(m.start + 4),
      handle: buf.readUInt32LE(m.start + 8),
      parent: buf.readUInt32LE(m.start + 12),
      kind: '',
      bytes: 0,
      packets: 0,
      drops: 0,
      qlen: 0,
      overlimits: 0,
      requeues: 0,
    };
    eachAttr(buf, m.start + TCMSG_LEN, m.end, (type, at, alen) => {
      if (type === TCA_KIND) {
        const nul = buf.indexOf(0, at);
        q.kind = buf.toString('utf8', at, nul >= 0 && nul < at + alen ? nul : at + alen);
      } else if (type === TCA_STATS2) {
        eachAttr(buf, at, at + alen, (st, sat, slen) => {
          // struct gnet_stats_basic: u64 bytes, u32 packets (and padding).
          if (st === TCA_STATS_BASIC) {
            if (slen < 12) throw new NetlinkDecodeError(`TCA_STATS_BASIC of ${slen} bytes`);
            q.bytes = Number(buf.readBigUInt64LE(sat));
            q.packets = buf.readUInt32LE(sat + 8);
          } else if (st === TCA_STATS_QUEUE) {
            // struct gnet_stats_queue: qlen, backlog, drops, requeues, overlimits.
            if (slen < 20) throw new NetlinkDecodeError(`TCA_STATS_QUEUE of ${slen} bytes`);
            q.qlen = buf.readUInt32LE(sat);
            q.drops = buf.readUInt32LE(sat + 8);
            q.requeues = buf.readUInt32LE(sat + 12);
            q.overlimits = buf.readUInt32LE(sat + 16);
          }
        });
      }
    });
    out.push(q);
  }
  return out;
}
