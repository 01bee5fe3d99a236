// The clsact and cls_bpf requests against the bytes `tc` sends for the same
// command, captured with `strace -e trace=sendmsg -e write=all` (iproute2
// 6.x, the device at ifindex 2, a program pinned in bpffs: tc sent it as
// fd 4 named "p:[*fsobj]"), nlmsg_seq and nlmsg_pid zeroed (the native
// layer sets them); and the qdisc dump decoder against a real kernel's
// reply (test/fixtures/netlink/capture-qdiscs.mjs) and what tc made of it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NetlinkDecodeError } from '../../../src/errors.js';
import {
  decodeQdiscs,
  encodeBpfFilter,
  encodeClsactQdisc,
  encodeDelBpfFilter,
  encodeDelClsactQdisc,
  encodeGetQdiscs,
} from '../../../src/netns/rtnl-tc.js';
import { fixture } from '../../helpers/fixtures.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const seqPid = '00000000 00000000';

describe('clsact and cls_bpf requests', () => {
  it('`tc qdisc add dev X clsact`', () => {
    expect(encodeClsactQdisc(2)).toEqual(
      hex(`30000000 2400 0506 ${seqPid} 00000000 02000000 0000ffff f1ffffff 00000000
           0b00 0100 636c7361 63740000`),
    );
  });

  it('`tc qdisc del dev X clsact`', () => {
    expect(encodeDelClsactQdisc(2)).toEqual(
      hex(`30000000 2500 0500 ${seqPid} 00000000 02000000 0000ffff f1ffffff 00000000
           0b00 0100 636c7361 63740000`),
    );
  });

  it('`tc filter add dev X egress prio 1 handle 1 bpf da object-pinned P`', () => {
    const req = encodeBpfFilter({
      ifindex: 2,
      hook: 'egress',
      prio: 1,
      handle: 1,
      fd: 4,
      name: 'p:[*fsobj]',
    });
    expect(req).toEqual(
      hex(`50000000 2c00 0506 ${seqPid} 00000000 02000000 01000000 f3ffffff 00030100
           0800 0100 62706600 2400 0200 0800 0600 04000000
           0f00 0700 703a5b2a 66736f62 6a5d0000 0800 0800 01000000`),
    );
  });

  it('`tc filter del dev X egress prio 1 handle 1 protocol all bpf`', () => {
    expect(encodeDelBpfFilter({ ifindex: 2, hook: 'egress', prio: 1, handle: 1 })).toEqual(
      hex(`2c000000 2d00 0500 ${seqPid} 00000000 02000000 01000000 f3ffffff 00030100
           0800 0100 62706600`),
    );
  });

  it('puts an ingress filter on the ingress hook, and its priority in tcm_info', () => {
    const req = encodeDelBpfFilter({ ifindex: 7, hook: 'ingress', prio: 300, handle: 9 });
    expect(req.readInt32LE(16 + 4)).toBe(7);
    expect(req.readUInt32LE(16 + 8)).toBe(9);
    expect(req.readUInt32LE(16 + 12)).toBe(0xfffffff2);
    expect(req.readUInt32LE(16 + 16)).toBe((300 << 16) | 0x0300);
  });

  it('`tc -s qdisc show dev X` asks for the dump', () => {
    expect(encodeGetQdiscs(2)).toEqual(
      hex(`24000000 2600 0103 ${seqPid} 00000000 02000000 00000000 00000000 00000000`),
    );
  });
});

describe('decodeQdiscs', () => {
  // The counters of `tc -s -j qdisc show`, by tc's names (which the decoder's fields share).
  const COUNTERS = ['bytes', 'packets', 'drops', 'qlen', 'overlimits', 'requeues'] as const;
  type Counter = (typeof COUNTERS)[number];
  const captured = JSON.parse(readFileSync(fixture('netlink/qdiscs.json'), 'utf8')) as {
    eth0: number;
    dump: string;
    tc: ({ kind: string; handle: string; dev: string } & Record<Counter, number>)[];
  };
  const dump = Buffer.from(captured.dump, 'hex');

  it("reads every qdisc of a real kernel's dump as tc does", () => {
    const got = decodeQdiscs(dump);
    expect(got.map((q) => q.kind)).toEqual(captured.tc.map((q) => q.kind));
    for (const [i, q] of got.entries()) {
      const t = captured.tc[i]!;
      const [major = '0'] = t.handle.split(':');
      expect(q.handle).toBe(Number.parseInt(major, 16) * 65536);
      for (const c of COUNTERS) expect([q.kind, c, q[c]]).toEqual([t.kind, c, t[c]]);
    }
    const tbf = got.find((q) => q.kind === 'tbf')!;
    expect(tbf.ifindex).toBe(captured.eth0);
    expect(tbf.parent).toBe(0xffffffff);
    expect(tbf.packets).toBeGreaterThan(0);
    expect(got.find((q) => q.kind === 'clsact')!.parent).toBe(0xfffffff1);
  });

  it('refuses a truncated dump with a NetlinkDecodeError, never reading past it', () => {
    for (const cut of [10, 40, 100, 150, dump.length - 3]) {
      const short = Buffer.from(dump.subarray(0, cut));
      // The first message's length now points past the end (or its attributes do).
      short.writeUInt32LE(Math.min(short.readUInt32LE(0), cut), 0);
      expect(() => decodeQdiscs(short)).toThrow(NetlinkDecodeError);
    }
  });
});
