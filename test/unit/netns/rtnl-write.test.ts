import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import {
  encodeNewAddr,
  encodeNewVeth,
  encodeSetLinkUp,
  parseCidr,
} from '../../../src/netns/rtnl-write.js';

/** Walks attributes at [start, end) and returns [type, payload] pairs (nested flag stripped). */
function attrs(b: Buffer, start: number, end: number): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = start; off + 4 <= end; ) {
    const len = b.readUInt16LE(off);
    out.push([b.readUInt16LE(off + 2) & 0x3fff, b.subarray(off + 4, off + len)]);
    off += (len + 3) & ~3;
  }
  return out;
}

describe('rtnetlink requests', () => {
  it('sets a link up by name with an ack requested', () => {
    const b = encodeSetLinkUp('lo');
    expect(b.readUInt32LE(0)).toBe(b.length);
    expect(b.readUInt16LE(4)).toBe(16); // RTM_NEWLINK
    expect(b.readUInt16LE(6)).toBe(0x5); // REQUEST | ACK, no CREATE
    expect(b.readUInt32LE(16 + 8)).toBe(1); // ifi_flags IFF_UP
    expect(b.readUInt32LE(16 + 12)).toBe(1); // ifi_change IFF_UP
    expect(attrs(b, 32, b.length)).toEqual([[3, Buffer.from('lo\0')]]);
  });

  it('nests the veth peer (ifinfomsg + name + netns fd) with correct lengths', () => {
    const b = encodeNewVeth({ name: 'va', peerName: 'vb', peerNetnsFd: 42, mtu: 1400 });
    expect(b.readUInt32LE(0)).toBe(b.length);
    expect(b.readUInt16LE(6)).toBe(0x605); // REQUEST | ACK | EXCL | CREATE
    const top = attrs(b, 32, b.length);
    expect(top.map(([t]) => t)).toEqual([3, 4, 18]);
    const linkinfo = top[2]![1];
    const info = attrs(linkinfo, 0, linkinfo.length);
    expect(info[0]).toEqual([1, Buffer.from('veth\0')]);
    const data = info[1]![1];
    const [peer] = attrs(data, 0, data.length);
    expect(peer![0]).toBe(1); // VETH_INFO_PEER
    const peerAttrs = attrs(peer![1], 16, peer![1].length);
    expect(peerAttrs).toEqual([
      [3, Buffer.from('vb\0')],
      [4, Buffer.from([0x78, 0x05, 0, 0])],
      [28, Buffer.from([42, 0, 0, 0])],
    ]);
  });

  it('encodes IPv4 and IPv6 addresses with their prefix', () => {
    const v4 = encodeNewAddr(7, '10.1.2.3/24');
    expect([v4[16], v4[17], v4.readUInt32LE(20)]).toEqual([2, 24, 7]);
    expect(attrs(v4, 24, v4.length)).toEqual([
      [2, Buffer.from([10, 1, 2, 3])],
      [1, Buffer.from([10, 1, 2, 3])],
    ]);
    const v6 = encodeNewAddr(3, 'fd00::1/64');
    expect([v6[16], v6[17]]).toEqual([10, 64]);
    expect(attrs(v6, 24, v6.length)[0]![1].toString('hex')).toBe(
      'fd000000000000000000000000000001',
    );
  });

  it('rejects malformed CIDRs', () => {
    for (const bad of [
      '10.0.0.1',
      '10.0.0.1/33',
      'fd00::1/129',
      'x/24',
      '10.0.0.1/24/1',
      '10.0.0.1/-1',
      '',
    ]) {
      expect(() => parseCidr(bad)).toThrow(InvalidArgumentError);
    }
    expect(parseCidr('::/0')).toMatchObject({ family: 6, prefix: 0 });
  });
});
