// Impairing a link of a topology: delay, jitter, loss and a rate in both
// directions, tc over netlink. netem at the root of each end where the
// kernel has it; where it has not (CONFIG_NET_SCH_NETEM unset, as on this
// project's CI), a delay line per end (delay-line.ts): a clsact qdisc and
// a cls_bpf filter that send the end's egress through a native thread.
// The mechanism is chosen when a link goes from unimpaired to impaired and
// kept until clear().
import { readFileSync } from 'node:fs';
import { AggregatePodnetError, InvalidArgumentError, PodnetSystemError } from '../errors.js';
import { native } from '../native.js';
import type { NetworkNamespace } from '../netns/index.js';
import {
  decodeQdiscs,
  encodeBpfFilter,
  encodeClsactQdisc,
  encodeDelBpfFilter,
  encodeDelClsactQdisc,
  encodeDelRootQdisc,
  encodeGetQdiscs,
  encodeNetemQdisc,
  type FilterPlace,
  type NetemRequest,
  pschedTicksPerUs,
  type Qdisc,
} from '../netns/rtnl-tc.js';
import { DelayLine, type LineParams } from './delay-line.js';

/**
 * Delay, jitter, loss and rate a link imposes on its packets, in each
 * direction; see `TopologyLink.impair`. A field left out is none.
 */
export interface Impairment {
  /** Added delay in each direction, in milliseconds. */
  delay?: number;
  /** Random variation of that delay (+/-, uniform), in milliseconds. */
  jitter?: number;
  /** Share of packets dropped in each direction, in percent (0 to 100). */
  loss?: number;
  /** Rate limit in each direction, in bits per second. */
  rate?: number;
}

/** The counters of one direction of an impaired link (the egress of one end). */
export interface ImpairmentDirection {
  /** The host whose end the packets leave, and the host they go to. */
  from: string;
  to: string;
  /** Packets (frames) that entered the impairment. */
  frames: number;
  /** Of which were sent on to the peer. */
  delivered: number;
  /** Of which were dropped, for any reason. */
  dropped: number;
  /**
   * Dropped by the loss probability, and because the queue held its limit
   * (1000 packets, netem's default): the delay line counts them apart;
   * netem counts both in its `drops` only, so these are undefined there.
   */
  lost: number | undefined;
  overflowed: number | undefined;
  /** Packets held now. */
  queued: number;
}

/** What `TopologyLink.impairment()` reports: what is applied, by what, and its counters. */
export interface ImpairmentState {
  /** The impairment as last applied. */
  impairment: Impairment;
  /**
   * 'netem': a netem qdisc at the root of each end, counters from its
   * statistics (RTM_GETQDISC). 'delay-line': this process's delay line
   * (the kernel has no netem), counters from the line.
   */
  mechanism: 'netem' | 'delay-line';
  /** The direction leaving the link's first end, then the one leaving its second. */
  directions: [ImpairmentDirection, ImpairmentDirection];
}

/** One end of a link: the host's namespace and interface. */
export interface ImpairedEnd {
  /** The host's name (for messages and counters). */
  host: string;
  ns: NetworkNamespace;
  ifname: string;
}

/** tc's default queue limit of netem, in packets: the line's too. */
const LIMIT = 1000;

/** Where the delay line's filter sits on an end's egress hook (the first to run). */
const FILTER = { hook: 'egress', prio: 1, handle: 1 } as const;
const FILTER_NAME = 'podnet-delay-line';
const TC_H_ROOT = 0xffffffff;
const TC_H_CLSACT = 0xfffffff1;

let ticksPerUs: number | undefined;
function pschedTicks(): number {
  ticksPerUs ??= pschedTicksPerUs(readFileSync('/proc/net/psched', 'utf8'));
  if (ticksPerUs === undefined)
    throw new InvalidArgumentError('/proc/net/psched is not what the kernel writes there');
  return ticksPerUs;
}

/** Checks an impairment (one typed line for anything wrong) and turns it into a netem request. */
function checkImpairment(imp: Impairment): NetemRequest {
  if (typeof imp !== 'object' || imp === null)
    throw new InvalidArgumentError(`an impairment is an object, not ${String(imp)}`);
  const num = (v: unknown, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > max)
      throw new InvalidArgumentError(
        `impairment ${name} must be a number from 0 to ${max}, not ${String(v)}`,
      );
    return v;
  };
  const delay = num(imp.delay, 'delay (ms)', 3_600_000);
  const jitter = num(imp.jitter, 'jitter (ms)', 3_600_000);
  const loss = num(imp.loss, 'loss (%)', 100);
  const rate = num(imp.rate, 'rate (bit/s)', 8 * 2 ** 40);
  return {
    ...(delay === undefined ? {} : { delayUs: delay * 1000 }),
    ...(jitter === undefined ? {} : { jitterUs: jitter * 1000 }),
    ...(loss === undefined ? {} : { lossPercent: loss }),
    ...(rate === undefined ? {} : { rateBytes: Math.max(1, Math.round(rate / 8)) }),
  };
}

function lineParams(req: NetemRequest): LineParams {
  return {
    delayUs: req.delayUs ?? 0,
    jitterUs: req.jitterUs ?? 0,
    lossPercent: req.lossPercent ?? 0,
    rateBytes: req.rateBytes ?? 0,
    limit: LIMIT,
  };
}

const errCode = (err: unknown): string | undefined => (err as { code?: string })?.code;

// One end's delay line and what was made for it.
interface LineEnd {
  end: ImpairedEnd;
  ifindex: number;
  line: DelayLine;
  /** The clsact qdisc is ours (made for the line), so clear() deletes it. */
  ownClsact: boolean;
  /** The filter is attached. */
  attached: boolean;
}

type Applied =
  | { mechanism: 'netem'; impairment: Impairment; req: NetemRequest }
  | { mechanism: 'delay-line'; impairment: Impairment; lines: [LineEnd, LineEnd] };

/**
 * The impairment of one link, between two ends. Operations on it run one
 * at a time, in call order. TopologyLink holds one; any two ends of a
 * veth will do (a node's interface and its port on a switch's bridge:
 * the port's egress is the direction toward the node).
 */
export class LinkImpairment {
  readonly #name: string;
  readonly #ends: [ImpairedEnd, ImpairedEnd];
  #applied: Applied | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #released = false;

  /** `name` names the link in messages (`a-b`). */
  constructor(name: string, ends: [ImpairedEnd, ImpairedEnd]) {
    this.#name = name;
    this.#ends = ends;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Applies `imp` (see TopologyLink.impair). */
  apply(imp: Impairment): Promise<void> {
    let req: NetemRequest;
    try {
      req = checkImpairment(imp);
    } catch (err) {
      return Promise.reject(err);
    }
    // What was asked, without anything else the object carried.
    const impairment: Impairment = {};
    for (const k of ['delay', 'jitter', 'loss', 'rate'] as const)
      if (imp[k] !== undefined) impairment[k] = imp[k];
    return this.#serial(async () => {
      const applied = this.#applied;
      if (applied?.mechanism === 'delay-line') {
        for (const l of applied.lines) l.line.set(lineParams(req));
        applied.impairment = impairment;
      } else if (applied?.mechanism === 'netem') {
        await this.#netem(req, applied.req);
        this.#applied = { mechanism: 'netem', impairment, req };
      } else if (await this.#netem(req, undefined)) {
        this.#applied = { mechanism: 'netem', impairment, req };
      } else {
        const lines = await this.#buildLines(lineParams(req));
        this.#applied = { mechanism: 'delay-line', impairment, lines };
        // The topology was removed while the lines were being built.
        if (this.#released) this.release();
      }
    });
  }

  /**
   * netem on both ends, one replace each: true when applied, false when
   * the link was unimpaired (no `previous`) and the kernel has no netem
   * (nothing changed: the delay line is to be used instead). A failure
   * half way puts the ends done back as they were: `previous` again, or
   * the default qdisc.
   */
  async #netem(req: NetemRequest, previous: NetemRequest | undefined): Promise<boolean> {
    const ticks = pschedTicks();
    const done: { end: ImpairedEnd; index: number }[] = [];
    try {
      for (const end of this.#ends) {
        const { index } = await end.ns.link(end.ifname);
        end.ns.rtnlAckSync(
          `impairing link ${this.#name}: netem on ${end.ifname} of '${end.host}'`,
          encodeNetemQdisc(index, req, ticks),
        );
        done.push({ end, index });
      }
      return true;
    } catch (err) {
      // ENOENT: no such qdisc kind (EOPNOTSUPP from a kernel that cannot
      // load it), answered to the first request: nothing changed anywhere.
      const missing = ['ENOENT', 'EOPNOTSUPP'].includes(errCode(err) ?? '');
      if (!previous && missing && done.length === 0) return false;
      for (const { end, index } of done) {
        try {
          if (previous)
            end.ns.rtnlAckSync(
              `impairing link ${this.#name}: netem back on ${end.ifname} of '${end.host}'`,
              encodeNetemQdisc(index, previous, ticks),
            );
          else await this.#delRoot(end);
        } catch {
          // The first failure is the one to report.
        }
      }
      throw err;
    }
  }

  async #delRoot(end: ImpairedEnd): Promise<void> {
    const { index } = await end.ns.link(end.ifname);
    try {
      end.ns.rtnlAckSync(
        `clearing link ${this.#name}: netem on ${end.ifname} of '${end.host}'`,
        encodeDelRootQdisc(index),
      );
    } catch (err) {
      // The default root qdisc cannot be deleted: EINVAL (or ENOENT) means none of ours is there.
      if (errCode(err) !== 'EINVAL' && errCode(err) !== 'ENOENT') throw err;
    }
  }

  /**
   * Builds a delay line per end (line, tap, program, clsact), then
   * attaches both filters, one request each; a failure anywhere undoes
   * what was made, in reverse, and the link is as it was.
   */
  async #buildLines(params: LineParams): Promise<[LineEnd, LineEnd]> {
    const made: LineEnd[] = [];
    const programs: number[] = [];
    try {
      for (const end of this.#ends) {
        const what = `impairing link ${this.#name} at ${end.ifname} of '${end.host}'`;
        const { index } = await end.ns.link(end.ifname);
        const line = await DelayLine.open(end.ns, index, params, what);
        const l: LineEnd = { end, ifindex: index, line, ownClsact: false, attached: false };
        made.push(l);
        programs.push(line.program(what));
        l.ownClsact = this.#clsact(l, what);
      }
      for (const [i, l] of made.entries()) {
        l.end.ns.rtnlAckSync(
          `impairing link ${this.#name}: attaching the delay line to ${l.end.ifname} of '${l.end.host}'`,
          encodeBpfFilter({ ...this.#place(l), fd: programs[i]!, name: FILTER_NAME }),
        );
        l.attached = true;
      }
      return made as [LineEnd, LineEnd];
    } catch (err) {
      await this.#undoLines(made).catch(() => undefined);
      throw err;
    } finally {
      // The filters hold their own references to the programs.
      for (const fd of programs) native.closeFd(fd);
    }
  }

  #place(l: LineEnd): FilterPlace {
    return { ifindex: l.ifindex, ...FILTER };
  }

  /**
   * Makes the end's clsact qdisc: true when made here, false when one was
   * there. An ingress qdisc shares clsact's handle and takes a filter
   * meant for the egress hook onto its own (ingress) one: refused.
   */
  #clsact(l: LineEnd, what: string): boolean {
    try {
      l.end.ns.rtnlAckSync(`${what}: adding a clsact qdisc`, encodeClsactQdisc(l.ifindex));
      return true;
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
    }
    const there = qdiscsOf(l.end.ns, l.ifindex, what).find((q) => q.parent === TC_H_CLSACT);
    if (there?.kind !== 'clsact')
      throw new PodnetSystemError(
        `${what}: the device has a '${there?.kind ?? '?'}' qdisc where the delay line's clsact goes`,
        { errno: 17, syscall: 'RTM_NEWQDISC' },
      );
    return false;
  }

  // Filter off first (traffic flows unimpaired from that request on), then
  // the clsact made for it, then the line and its tap. Carries on past a
  // failure; an end already gone (its namespace removed) is no failure. A
  // filter that could not be removed keeps its line (closing it would
  // black-hole the end), so a later clear() can finish.
  async #undoLines(lines: LineEnd[]): Promise<void> {
    const errors: unknown[] = [];
    const gone = (err: unknown): boolean =>
      ['ENOENT', 'ENODEV', 'EINVAL', 'ERR_PODNET_CLOSED'].includes(errCode(err) ?? '');
    const attempt = (what: string, req: () => Buffer, ns: NetworkNamespace): boolean => {
      try {
        ns.rtnlAckSync(what, req());
        return true;
      } catch (err) {
        if (gone(err)) return true;
        errors.push(err);
        return false;
      }
    };
    for (const l of [...lines].reverse()) {
      const what = `clearing link ${this.#name} at ${l.end.ifname} of '${l.end.host}'`;
      const ns = l.end.ns;
      if (l.attached) {
        l.attached = !attempt(
          `${what}: removing the filter`,
          () => encodeDelBpfFilter(this.#place(l)),
          ns,
        );
        if (l.attached) continue;
      }
      if (l.ownClsact)
        l.ownClsact = !attempt(
          `${what}: removing clsact`,
          () => encodeDelClsactQdisc(l.ifindex),
          ns,
        );
      l.line.close();
    }
    if (errors.length)
      throw new AggregatePodnetError('ERR_PODNET_TEARDOWN', `clearing link ${this.#name}`, errors);
  }

  /** Removes the impairment; a link this object never impaired is left as it is. */
  clear(): Promise<void> {
    return this.#serial(async () => {
      const applied = this.#applied;
      if (!applied) return;
      if (applied.mechanism === 'netem') {
        for (const end of this.#ends) await this.#delRoot(end);
      } else {
        await this.#undoLines(applied.lines);
      }
      this.#applied = undefined;
    });
  }

  /** What is applied and its counters, or undefined when unimpaired. */
  state(): Promise<ImpairmentState | undefined> {
    return this.#serial(async () => {
      const applied = this.#applied;
      if (!applied) return undefined;
      const [a, b] = this.#ends;
      const pair = (i: 0 | 1): { from: string; to: string } =>
        i === 0 ? { from: a.host, to: b.host } : { from: b.host, to: a.host };
      if (applied.mechanism === 'delay-line') {
        const dir = (i: 0 | 1): ImpairmentDirection => {
          const c = applied.lines[i].line.counters();
          return {
            ...pair(i),
            frames: c.frames,
            delivered: c.delivered,
            dropped: c.lost + c.overflowed + c.failed,
            lost: c.lost,
            overflowed: c.overflowed,
            queued: c.queued,
          };
        };
        return {
          impairment: { ...applied.impairment },
          mechanism: 'delay-line',
          directions: [dir(0), dir(1)],
        };
      }
      const dirs: ImpairmentDirection[] = [];
      for (const i of [0, 1] as const) {
        const end = this.#ends[i];
        const what = `reading the impairment of link ${this.#name} at ${end.ifname} of '${end.host}'`;
        const { index } = await end.ns.link(end.ifname);
        const q = qdiscsOf(end.ns, index, what).find(
          (x) => x.parent === TC_H_ROOT && x.kind === 'netem',
        );
        dirs.push({
          ...pair(i),
          frames: (q?.packets ?? 0) + (q?.drops ?? 0) + (q?.qlen ?? 0),
          delivered: q?.packets ?? 0,
          dropped: q?.drops ?? 0,
          lost: undefined,
          overflowed: undefined,
          queued: q?.qlen ?? 0,
        });
      }
      return {
        impairment: { ...applied.impairment },
        mechanism: 'netem',
        directions: dirs as [ImpairmentDirection, ImpairmentDirection],
      };
    });
  }

  /**
   * Stops the delay lines without a netlink request, for a topology whose
   * namespaces are about to go (their filters go with them): a tap's fd
   * holds its namespace alive, so the lines must close first.
   */
  release(): void {
    this.#released = true;
    if (this.#applied?.mechanism === 'delay-line')
      for (const l of this.#applied.lines) l.line.close();
    this.#applied = undefined;
  }
}

function qdiscsOf(ns: NetworkNamespace, ifindex: number, what: string): Qdisc[] {
  const reply = ns.rtnlRequestSync(`${what}: listing qdiscs`, encodeGetQdiscs());
  return decodeQdiscs(reply, reply.length, `${what}: listing qdiscs`).filter(
    (q) => q.ifindex === ifindex,
  );
}
