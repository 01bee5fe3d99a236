import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetlinkDecodeError, PodnetSystemError } from '../../../src/errors.js';
import { decodeAddresses, encodeGetAddr } from '../../../src/netns/rtnl.js';
import { fixture } from '../../helpers/fixtures.js';

// See _comment in the fixture for how it was captured.
const captured = JSON.parse(readFileSync(fixture('netlink/addresses.json'), 'utf8')) as {
  dump: string;
  ip: {
    index: number;
    family: 4 | 6;
    address: string;
    prefixLength: number;
    scope: string;
    tentative: boolean;
    label?: string;
  }[];
};
const dump = Buffer.from(captured.dump, 'hex');
const SCOPES: Record<string, number> = { global: 0, site: 200, link: 253, host: 254 };
const IFA_F_TENTATIVE = 0x40;

describe('encodeGetAddr', () => {
  it('builds a dump request with an all-zero ifaddrmsg', () => {
    const b = encodeGetAddr();
    expect(b.length).toBe(24);
    expect(b.readUInt32LE(0)).toBe(24);
    expect(b.readUInt16LE(4)).toBe(22); // RTM_GETADDR
    expect(b.readUInt16LE(6)).toBe(0x301); // NLM_F_REQUEST | NLM_F_DUMP
    expect(b.subarray(16).every((x) => x === 0)).toBe(true);
  });
});

describe('decodeAddresses', () => {
  it('decodes a captured dump as `ip -j addr` showed it', () => {
    // The kernel dumps IPv4 first; ip groups by link.
    const order = (a: { family: number; index: number }, b: typeof a) =>
      a.family - b.family || a.index - b.index;
    const got = decodeAddresses(dump);
    expect(
      got.map((a) => ({
        index: a.index,
        family: a.family,
        address: a.address,
        prefixLength: a.prefixLength,
        scope: a.scope,
        tentative: (a.flags & IFA_F_TENTATIVE) !== 0,
        ...(a.family === 4 && a.label !== undefined ? { label: a.label } : {}),
      })),
    ).toEqual(captured.ip.map((a) => ({ ...a, scope: SCOPES[a.scope] })).sort(order));
  });

  it('throws NetlinkDecodeError, never reads out of bounds, on any truncation or corruption', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: dump.length - 1 }),
        fc.integer({ min: 0, max: dump.length - 1 }),
        fc.integer({ min: 0, max: 255 }),
        (cut, at, byte) => {
          const b = Buffer.from(dump);
          b[at] = byte;
          try {
            decodeAddresses(b, cut);
          } catch (err) {
            // A byte that turns a message into NLMSG_ERROR reads as a kernel error.
            expect(err instanceof NetlinkDecodeError || err instanceof PodnetSystemError).toBe(
              true,
            );
          }
        },
      ),
    );
  });

  it('refuses an address attribute of the wrong size', () => {
    // The first message is lo's 127.0.0.1: shrink its IFA_ADDRESS to 3 bytes.
    const b = Buffer.from(dump);
    const at = 16 + 8; // after nlmsghdr and ifaddrmsg: the first attribute
    expect(b.readUInt16LE(at + 2)).toBe(1); // IFA_ADDRESS
    b.writeUInt16LE(7, at);
    expect(() => decodeAddresses(b)).toThrow(NetlinkDecodeError);
  });
});
