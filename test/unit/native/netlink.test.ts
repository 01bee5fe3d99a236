// The statistics fast path decodes in C++; the rest of podnet decodes in
// TypeScript. Both must agree on every reply, and the C++ one must fail
// cleanly (never read out of bounds) on the same malformed input.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import { native } from '../../../src/native.js';
import { decodeLinkStats, linkStatsFields, statsFromCounters } from '../../../src/netns/rtnl.js';
import { fixture } from '../../helpers/fixtures.js';

const captured = JSON.parse(readFileSync(fixture('netlink/captured.json'), 'utf8')) as {
  v0: string;
  enodev: string;
};

/** The TypeScript decoder's verdict: counters, or 'error' for any podnet error. */
function tsDecode(buf: Buffer): number[] | 'error' {
  try {
    return Object.values(decodeLinkStats(buf, buf.length, 'x'));
  } catch (err) {
    if (!isPodnetError(err)) throw err;
    return 'error';
  }
}

function cppDecode(buf: Buffer): number[] | 'error' {
  const out = new Float64Array(linkStatsFields.length);
  const n = native.decodeStats(buf, buf.length, out);
  return n >= 0 ? Object.values(statsFromCounters(out)) : 'error';
}

// The C++ and TypeScript decoders agree on every truncation of BASE and on
// random byte edits of it.
function agreesOnDamage(base: Buffer): void {
  for (let n = 0; n < base.length; n++) {
    const b = base.subarray(0, n);
    expect(cppDecode(b)).toEqual(tsDecode(b));
  }
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
        maxLength: 12,
      }),
      (edits) => {
        const b = Buffer.from(base);
        for (const [at, v] of edits) b[at] = v;
        expect(cppDecode(b)).toEqual(tsDecode(b));
      },
    ),
    { numRuns: 3000 },
  );
}

describe('the C++ statistics decoder', () => {
  it('reads the captured reply as the TypeScript decoder does', () => {
    const buf = Buffer.from(captured.v0, 'hex');
    const out = new Float64Array(25);
    expect(native.decodeStats(buf, buf.length, out)).toBe(25);
    expect(cppDecode(buf)).toEqual(tsDecode(buf));
  });

  it('returns the kernel errno of an NLMSG_ERROR', () => {
    const buf = Buffer.from(captured.enodev, 'hex');
    expect(native.decodeStats(buf, buf.length, new Float64Array(25))).toBe(-19);
  });

  it('agrees with the TypeScript decoder on every truncation and on random corruption', () => {
    agreesOnDamage(Buffer.from(captured.v0, 'hex'));
  });

  it('checks its arguments', () => {
    const buf = Buffer.from(captured.v0, 'hex');
    expect(() => native.decodeStats(buf, buf.length + 1, new Float64Array(25))).toThrow();
    expect(() => native.decodeStats(buf, buf.length, new Float64Array(3))).toThrow();
  });
});

describe('the C++ statistics decoder on RTM_GETSTATS replies', () => {
  const events = JSON.parse(readFileSync(fixture('netlink/events.json'), 'utf8')) as {
    getstatsLo: string;
    getstatsEnodev: string;
  };

  it('reads IFLA_STATS_LINK_64 of an RTM_NEWSTATS as the TypeScript decoder does', () => {
    const buf = Buffer.from(events.getstatsLo, 'hex');
    expect(native.decodeStats(buf, buf.length, new Float64Array(25))).toBe(25);
    const cpp = cppDecode(buf);
    expect(cpp).toEqual(tsDecode(buf));
    expect((cpp as number[])[0]).toBeGreaterThan(0); // rxPackets
    const enodev = Buffer.from(events.getstatsEnodev, 'hex');
    expect(native.decodeStats(enodev, enodev.length, new Float64Array(25))).toBe(-19);
  });

  it('agrees with the TypeScript decoder on every truncation and on random corruption', () => {
    agreesOnDamage(Buffer.from(events.getstatsLo, 'hex'));
  });
});
