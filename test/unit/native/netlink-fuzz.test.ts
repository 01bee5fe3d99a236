// Fuzzing the C++ statistics decoder (native/rtnl-stats.cc DecodeStats) with
// random and structured replies: a length field that lies, a last attribute
// whose length is not a multiple of 4, a message shorter than the buffer it
// is in, a len argument shorter than the buffer. Every input lives in a heap
// block of exactly its size, so under the sanitizer build
// (test/unit/native/sanitizers.test.ts) a read one byte past the end is reported;
// here the verdicts must also agree with the TypeScript decoder.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import { native } from '../../../src/native.js';
import { decodeLinkStats } from '../../../src/netns/rtnl.js';

const NLMSG_ERROR = 2;
const RTM_NEWLINK = 16;
const IFLA_STATS64 = 23;
const HDR = 16 + 16; // nlmsghdr + ifinfomsg

/** BYTES copied into an ArrayBuffer of exactly their length (no pool slack to hide an overread). */
function exact(bytes: Uint8Array): Buffer {
  const b = Buffer.from(new ArrayBuffer(bytes.length));
  b.set(bytes);
  return b;
}

/** One rtattr: its length field, type, and the payload bytes that follow (which may be fewer). */
function attr(len: number, type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const a = Buffer.alloc(4 + payload.length);
  a.writeUInt16LE(len, 0);
  a.writeUInt16LE(type, 2);
  a.set(payload, 4);
  return a;
}

/** An RTM_NEWLINK message whose nlmsg_len is `mlen` (default: everything), in a buffer of `extra` more bytes. */
function message(attrs: Buffer[], opts: { mlen?: number; extra?: Buffer; type?: number } = {}) {
  const body = Buffer.concat([Buffer.alloc(HDR), ...attrs]);
  body.writeUInt32LE(opts.mlen ?? body.length, 0);
  body.writeUInt16LE(opts.type ?? RTM_NEWLINK, 4);
  return exact(Buffer.concat([body, opts.extra ?? Buffer.alloc(0)]));
}

function cpp(buf: Buffer, len = buf.length): number {
  return native.decodeStats(buf, len, new Float64Array(25));
}

function ts(buf: Buffer, len = buf.length): 'ok' | 'error' {
  try {
    decodeLinkStats(buf, len, 'x');
    return 'ok';
  } catch (err) {
    if (!isPodnetError(err)) throw err;
    return 'error';
  }
}

/** A C++ result is one of: a count of counters (23..25), a negative errno, or one of the two verdicts. */
function wellFormedResult(n: number): boolean {
  return (
    (n >= 23 && n <= 25) ||
    n === native.STATS_MALFORMED ||
    n === native.STATS_MISSING ||
    (n < 0 && n > -4096)
  );
}

const stats = (fields: number) => attr(4 + fields * 8, IFLA_STATS64, new Uint8Array(fields * 8));

describe('the C++ statistics decoder under hostile input', () => {
  it('stops at an unaligned last attribute that ends the buffer', () => {
    for (const len of [5, 6, 7]) {
      const buf = message([attr(len, 3, new Uint8Array(len - 4))]);
      expect(cpp(buf)).toBe(native.STATS_MISSING);
      expect(ts(buf)).toBe('error');
    }
  });

  it('never reads past the message: an IFLA_STATS64 after its end is not seen', () => {
    // nlmsg_len ends right after an unaligned attribute; the buffer goes on
    // with a valid stats attribute that belongs to no message.
    const buf = message([attr(5, 3, new Uint8Array(1))], {
      mlen: HDR + 5,
      extra: Buffer.concat([Buffer.alloc(3), stats(25)]),
    });
    expect(cpp(buf)).toBe(native.STATS_MISSING);
    expect(ts(buf)).toBe('error');
  });

  it('never reads past the len it was given, even when the buffer goes on', () => {
    const good = message([stats(25)]);
    expect(cpp(good)).toBe(25);
    const withTail = exact(Buffer.concat([good, stats(25)]));
    // len cuts the message: its nlmsg_len no longer fits.
    expect(cpp(withTail, good.length - 1)).toBe(native.STATS_MALFORMED);
    expect(cpp(withTail, good.length)).toBe(25);
  });

  it('calls an attribute longer than what is left malformed, and a short IFLA_STATS64 too', () => {
    expect(cpp(message([attr(200, 3, new Uint8Array(8))]))).toBe(native.STATS_MALFORMED);
    expect(cpp(message([stats(22)]))).toBe(native.STATS_MALFORMED);
    expect(cpp(message([attr(3, 3)]))).toBe(native.STATS_MALFORMED);
    expect(cpp(message([stats(25)], { mlen: HDR - 1 }))).toBe(native.STATS_MALFORMED);
    expect(cpp(message([], { type: NLMSG_ERROR, mlen: 17 }))).toBe(native.STATS_MALFORMED);
  });

  const arbAttr = fc
    .record({
      len: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 180, max: 260 })),
      type: fc.constantFrom(IFLA_STATS64, IFLA_STATS64 | 0x8000, 3, 0),
      slack: fc.integer({ min: -8, max: 8 }),
    })
    .map(({ len, type, slack }) =>
      // The payload may be shorter or longer than the length field says.
      attr(len, type, new Uint8Array(Math.max(0, len - 4 + slack))),
    );

  it('agrees with the TypeScript decoder on structured replies (lengths that lie, short messages)', () => {
    fc.assert(
      fc.property(
        fc.array(arbAttr, { maxLength: 5 }),
        fc.integer({ min: -12, max: 12 }),
        fc.uint8Array({ maxLength: 16 }),
        fc.nat(8),
        (attrs, mlenDelta, extra, cut) => {
          const natural = HDR + attrs.reduce((n, a) => n + a.length, 0);
          const buf = message(attrs, {
            mlen: Math.max(0, natural + mlenDelta),
            extra: Buffer.from(extra),
          });
          const len = Math.max(0, buf.length - cut);
          const n = cpp(buf, len);
          expect(wellFormedResult(n)).toBe(true);
          expect(n >= 0 ? 'ok' : 'error').toBe(ts(buf, len));
        },
      ),
      { numRuns: 4000 },
    );
  });

  it('returns a verdict, never garbage, for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, plausible) => {
        const buf = exact(bytes);
        if (plausible && buf.length >= 6) {
          // A header that passes the first checks, so the attribute loop runs.
          buf.writeUInt32LE(buf.length, 0);
          buf.writeUInt16LE(RTM_NEWLINK, 4);
        }
        const n = cpp(buf);
        expect(wellFormedResult(n)).toBe(true);
        expect(n >= 0 ? 'ok' : 'error').toBe(ts(buf));
      }),
      { numRuns: 4000 },
    );
  });
});
