import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isPodnetError, NetlinkDecodeError, PodnetSystemError } from '../../../src/errors.js';
import {
  decodeLinkStats,
  decodeLinks,
  decodeStats64,
  encodeGetLink,
  linkStatsFields,
} from '../../../src/netns/rtnl.js';
import { fixture } from '../../helpers/fixtures.js';

// Replies captured from a real kernel (6.18): a namespace with lo and a
// veth pair v0/v1, and `ip -s -s -j link show dev v0` read right after.
const captured = JSON.parse(readFileSync(fixture('netlink/captured.json'), 'utf8')) as {
  dump: string;
  v0: string;
  enodev: string;
  ipStats: [
    {
      address: string;
      mtu: number;
      stats64: { rx: Record<string, number>; tx: Record<string, number> };
    },
  ];
};
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('encodeGetLink', () => {
  it('builds a dump request without attributes', () => {
    const b = encodeGetLink();
    expect(b.length).toBe(32);
    expect(b.readUInt32LE(0)).toBe(32);
    expect(b.readUInt16LE(4)).toBe(18); // RTM_GETLINK
    expect(b.readUInt16LE(6)).toBe(0x301); // NLM_F_REQUEST | NLM_F_DUMP
  });

  it('builds a by-name request with a NUL-terminated, 4-byte aligned IFLA_IFNAME', () => {
    const b = encodeGetLink('eth0');
    expect(b.length).toBe(32 + 12);
    expect(b.readUInt16LE(6)).toBe(1);
    expect(b.readUInt16LE(32)).toBe(9); // rta_len: 4 + "eth0\0"
    expect(b.readUInt16LE(34)).toBe(3); // IFLA_IFNAME
    expect(b.toString('utf8', 36, 40)).toBe('eth0');
    expect(b[40]).toBe(0);
  });
});

describe('decodeLinks', () => {
  it('decodes a captured dump', () => {
    const buf = hex(captured.dump);
    const links = decodeLinks(buf);
    expect(links.map((l) => l.name)).toEqual(['lo', 'v1', 'v0']);
    const lo = links[0]!;
    expect(lo).toMatchObject({ index: 1, mtu: 65536, mac: '00:00:00:00:00:00', up: true });
    const v0 = links.find((l) => l.name === 'v0')!;
    expect(v0).toMatchObject({
      kind: 'veth',
      mtu: 1500,
      mac: '02:00:00:00:00:01',
      up: true,
      operstate: 'up',
    });
  });

  it('turns NLMSG_ERROR into a system error with the errno name', () => {
    let err: unknown;
    try {
      decodeLinkStats(hex(captured.enodev), hex(captured.enodev).length, 'reading nope');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({ code: 'ENODEV', errno: -19, syscall: 'netlink' });
  });
});

describe('decodeLinkStats', () => {
  it('agrees with ip -s -j link for the captured reply', () => {
    const buf = hex(captured.v0);
    const s = decodeLinkStats(buf, buf.length, 'x');
    const ip = captured.ipStats[0].stats64;
    expect(s.rxBytes).toBe(ip.rx['bytes']);
    expect(s.rxPackets).toBe(ip.rx['packets']);
    expect(s.txBytes).toBe(ip.tx['bytes']);
    expect(s.txPackets).toBe(ip.tx['packets']);
    expect(s.rxErrors).toBe(ip.rx['errors']);
    expect(s.txDropped).toBe(ip.tx['dropped']);
    expect(Object.keys(s)).toEqual([...linkStatsFields]);
  });

  it('gives bigints on request', () => {
    const buf = hex(captured.v0);
    const s = decodeLinkStats(buf, buf.length, 'x', true);
    expect(typeof s.rxBytes).toBe('bigint');
    expect(s.rxBytes).toBe(BigInt(captured.ipStats[0].stats64.rx['bytes']!));
  });

  it('only reads the given length of a reused buffer', () => {
    const reply = hex(captured.v0);
    const big = Buffer.alloc(reply.length + 100, 0xff);
    reply.copy(big);
    expect(decodeLinkStats(big, reply.length, 'x').rxBytes).toBe(
      captured.ipStats[0].stats64.rx['bytes'],
    );
  });
});

describe('decodeStats64', () => {
  it('reads 64-bit counters exactly as bigint and approximately above 2^53 as number', () => {
    const b = Buffer.alloc(25 * 8);
    b.writeBigUInt64LE(2n ** 60n + 1n, 16); // rxBytes
    b.writeBigUInt64LE(12345n, 0);
    expect(decodeStats64(b, 0, b.length, true).rxBytes).toBe(2n ** 60n + 1n);
    expect(decodeStats64(b, 0, b.length).rxPackets).toBe(12345);
    expect(decodeStats64(b, 0, b.length).rxBytes).toBe(2 ** 60);
  });

  it('gives 0 for counters an older kernel does not send, and rejects short payloads', () => {
    const b = Buffer.alloc(23 * 8, 1);
    expect(decodeStats64(b, 0, b.length).rxOtherhostDropped).toBe(0);
    expect(() => decodeStats64(b, 0, 22 * 8)).toThrow(NetlinkDecodeError);
    expect(() => decodeStats64(b, 8, b.length)).toThrow(NetlinkDecodeError);
  });
});

describe('malformed replies', () => {
  const decodeAll = (buf: Buffer): void => {
    decodeLinks(buf);
    decodeLinkStats(buf, buf.length, 'x');
  };
  const expectCleanFailure = (buf: Buffer): void => {
    try {
      decodeAll(buf);
    } catch (err) {
      // Never a RangeError or TypeError from reading out of bounds.
      if (!isPodnetError(err)) throw err;
    }
  };

  it('fails cleanly on every truncation of a real reply', () => {
    for (const name of ['dump', 'v0'] as const) {
      const full = hex(captured[name]);
      for (let n = 0; n < full.length; n++) expectCleanFailure(full.subarray(0, n));
    }
  });

  it('rejects a message length past the end', () => {
    const b = hex(captured.v0);
    b.writeUInt32LE(b.length + 4, 0);
    expect(() => decodeLinks(b)).toThrow(NetlinkDecodeError);
  });

  it('rejects an attribute length past its message', () => {
    const b = hex(captured.v0);
    b.writeUInt16LE(0xfff0, 32); // first attribute of the ifinfomsg
    expect(() => decodeLinks(b)).toThrow(/out of bounds/);
  });

  it('never crashes on random corruption (property)', () => {
    const base = hex(captured.v0);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), {
          maxLength: 16,
        }),
        (edits) => {
          const b = Buffer.from(base);
          for (const [at, v] of edits) b[at] = v;
          expectCleanFailure(b);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
