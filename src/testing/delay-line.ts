// One direction of an impaired link on a kernel without netem: the end's
// egress goes through a delay line (native/delayline.cc) instead. A cls_bpf
// filter on the end's clsact egress hook runs `redirectProgram`: a frame
// the line sent (skb->mark is DELAY_LINE_MARK) goes on to the peer, every
// other one is redirected to a tap in the end's namespace, whose fd the
// line reads. The line holds each frame for its delay and sends it out of
// the end through a packet socket that marks it.
//
// The line lives in the process that made it: the tap goes when its fd
// closes, so when that process exits, the filter redirects to a device
// that is no longer there and the link black-holes until its namespaces
// are removed (a topology's reaper removes them).
import { randomBytes } from 'node:crypto';
import { call, native, systemError } from '../native.js';
import type { NetworkNamespace } from '../netns/index.js';

/** What the line's packet socket marks its frames with ('pndl'; below 2^31, see the program). */
export const DELAY_LINE_MARK = 0x706e646c;

/** The program's license: bpf_redirect is not a GPL-only helper, so the project's own. */
const LICENSE = 'Apache-2.0';

const BPF_LDX_MEM_W = 0x61;
const BPF_JMP_JEQ_K = 0x15;
const BPF_ALU64_MOV_K = 0xb7;
const BPF_JMP_CALL = 0x85;
const BPF_JMP_EXIT = 0x95;
const BPF_FUNC_REDIRECT = 23;
/** offsetof(struct __sk_buff, mark). */
const SKB_MARK = 8;
const TC_ACT_OK = 0;

// struct bpf_insn: code, dst_reg (low nibble) and src_reg (high), s16 off, s32 imm.
function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}

/**
 * The classifier (BPF_PROG_TYPE_SCHED_CLS, direct action):
 * `return skb->mark == mark ? TC_ACT_OK : bpf_redirect(tapIfindex, 0)`,
 * the redirect to the tap's egress. The comparison is of a 64-bit register
 * against a sign-extended immediate, so the mark must be below 2^31.
 */
export function redirectProgram(tapIfindex: number, mark: number): Buffer {
  return Buffer.concat([
    insn(BPF_LDX_MEM_W, 2, 1, SKB_MARK, 0), // r2 = skb->mark
    insn(BPF_JMP_JEQ_K, 2, 0, 4, mark), // if r2 == mark goto pass
    insn(BPF_ALU64_MOV_K, 1, 0, 0, tapIfindex), // r1 = tap
    insn(BPF_ALU64_MOV_K, 2, 0, 0, 0), // r2 = 0 (its egress)
    insn(BPF_JMP_CALL, 0, 0, 0, BPF_FUNC_REDIRECT), // r0 = bpf_redirect(r1, r2)
    insn(BPF_JMP_EXIT, 0, 0, 0, 0),
    insn(BPF_ALU64_MOV_K, 0, 0, 0, TC_ACT_OK), // pass: r0 = TC_ACT_OK
    insn(BPF_JMP_EXIT, 0, 0, 0, 0),
  ]);
}

/** What a line does to each frame (a netem-like request in the line's units). */
export interface LineParams {
  delayUs: number;
  jitterUs: number;
  lossPercent: number;
  /** Bytes a second (0: no rate limit). */
  rateBytes: number;
  /** Frames queued at most. */
  limit: number;
}

function nativeParams(p: LineParams): number[] {
  return [p.delayUs * 1000, p.jitterUs * 1000, p.lossPercent / 100, p.rateBytes, p.limit];
}

/** A line's counters. */
export interface LineCounters {
  frames: number;
  delivered: number;
  lost: number;
  overflowed: number;
  failed: number;
  queued: number;
  /** Why its input stopped (the tap was deleted), 0 while it reads. */
  errno: number;
}

function counters(v: number[]): LineCounters {
  const [frames = 0, delivered = 0, lost = 0, overflowed = 0, failed = 0, queued = 0, errno = 0] =
    v;
  return { frames, delivered, lost, overflowed, failed, queued, errno };
}

/** One running line: its tap in the end's namespace and its classifier, ready to attach. */
export class DelayLine {
  /** The tap's name (`pdl` and 8 hex digits) and index in the end's namespace. */
  readonly tap: string;
  readonly tapIndex: number;
  readonly #id: number;
  #closed = false;

  private constructor(id: number, tap: string, tapIndex: number) {
    this.#id = id;
    this.tap = tap;
    this.tapIndex = tapIndex;
  }

  /**
   * Starts a line for the egress of `ifindex` in `ns`: the tap and the
   * packet socket are made inside the namespace (a thread of their own),
   * then handed to the line's thread. Nothing is redirected yet.
   */
  static async open(
    ns: NetworkNamespace,
    ifindex: number,
    params: LineParams,
    what: string,
  ): Promise<DelayLine> {
    const tap = `pdl${randomBytes(4).toString('hex')}`;
    const [tapFd, packetFd] = await call(
      `${what}: making the delay line's tap ${tap}`,
      native.delayLineSockets(ns.fd, tap, ifindex, DELAY_LINE_MARK),
    );
    let id: number;
    try {
      id = native.delayLineStart(tapFd!, packetFd!, nativeParams(params));
    } catch (err) {
      throw systemError(`${what}: starting the delay line`, err);
    }
    try {
      const { index } = await ns.link(tap);
      return new DelayLine(id, tap, index);
    } catch (err) {
      native.delayLineClose(id);
      throw err;
    }
  }

  /** Loads the line's classifier: the program's fd, for a filter; the caller closes it. */
  program(what: string): number {
    try {
      return native.loadSchedCls(redirectProgram(this.tapIndex, DELAY_LINE_MARK), LICENSE);
    } catch (err) {
      throw systemError(`${what}: loading the delay line's classifier`, err);
    }
  }

  /** New parameters, for every frame that comes from now on (one swap in the line). */
  set(params: LineParams): void {
    native.delayLineSet(this.#id, nativeParams(params));
  }

  /** Its counters now. */
  counters(): LineCounters {
    return counters(native.delayLineStats(this.#id) ?? []);
  }

  /** Stops it: the tap goes with its fd, what it held is dropped. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    native.delayLineClose(this.#id);
  }
}
