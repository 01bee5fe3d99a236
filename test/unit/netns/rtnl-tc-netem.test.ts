// The netem requests against the bytes `tc` sends for the same command,
// captured with strace (iproute2 6.x, /proc/net/psched 000003e8 00000040
// 000f4240 3b9aca00, the device at ifindex 2), nlmsg_seq and nlmsg_pid zeroed
// (the native layer sets them).
import { describe, expect, it } from 'vitest';
import {
  encodeDelRootQdisc,
  encodeNetemQdisc,
  pschedTicksPerUs,
} from '../../../src/netns/rtnl-tc.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const PSCHED = '000003e8 00000040 000f4240 3b9aca00\n';
const tcmsg = '00000000 02000000 00000000 ffffffff 00000000';
const kind = '0a00 0100 6e6574656d000000';

describe('netem qdisc requests', () => {
  it('reads psched as tc does: 15.625 ticks a microsecond', () => {
    expect(pschedTicksPerUs(PSCHED)).toBe(15.625);
    // A nanosecond clock's 1000 multiplier means 1.
    expect(pschedTicksPerUs('000003e8 00000001 3b9aca00 3b9aca00')).toBe(1000);
    expect(pschedTicksPerUs('garbage')).toBeUndefined();
    expect(pschedTicksPerUs('0 0 0 0')).toBeUndefined();
  });

  it('`tc qdisc add dev X root netem delay 50ms`', () => {
    const want = hex(
      `4c000000 2400 0506 00000000 00000000 ${tcmsg} ${kind}
       1c00 0200 c2eb0b00 e8030000 00000000 00000000 00000000 00000000`,
    );
    expect(
      encodeNetemQdisc(2, { delayUs: 50_000 }, pschedTicksPerUs(PSCHED)!, { exclusive: true }),
    ).toEqual(want);
  });

  it('`tc qdisc replace dev X root netem delay 50ms 5ms loss 1% rate 10mbit`', () => {
    const want = hex(
      `60000000 2400 0505 00000000 00000000 ${tcmsg} ${kind}
       3000 0200 c2eb0b00 e8030000 295c8f02 00000000 00000000 2d310100
       1400 0600 d0121300 00000000 00000000 00000000`,
    );
    expect(
      encodeNetemQdisc(
        2,
        { delayUs: 50_000, jitterUs: 5_000, lossPercent: 1, rateBytes: 1_250_000 },
        15.625,
      ),
    ).toEqual(want);
  });

  it('`tc qdisc del dev X root`', () => {
    expect(encodeDelRootQdisc(2)).toEqual(hex(`24000000 2500 0500 00000000 00000000 ${tcmsg}`));
  });

  it('puts what 32 bits of ticks cannot hold in the 64-bit attributes', () => {
    // 400 s is 6.25e9 ticks: the struct saturates, LATENCY64 carries nanoseconds.
    const msg = encodeNetemQdisc(2, { delayUs: 400e6, rateBytes: 2 ** 33 }, 15.625);
    const opts = msg.subarray(16 + 20 + 12);
    expect(opts.readUInt32LE(4)).toBe(0xffffffff); // latency
    const lat = opts.subarray(4 + 24);
    expect([lat.readUInt16LE(0), lat.readUInt16LE(2)]).toEqual([12, 10]);
    expect(lat.readBigInt64LE(4)).toBe(400_000_000_000n);
    const rate = lat.subarray(12);
    expect([rate.readUInt16LE(2), rate.readUInt32LE(4)]).toEqual([6, 0xffffffff]);
    const rate64 = rate.subarray(20);
    expect([rate64.readUInt16LE(2), rate64.readBigUInt64LE(4)]).toEqual([8, 2n ** 33n]);
  });
});
