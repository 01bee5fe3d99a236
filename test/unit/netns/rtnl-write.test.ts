import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import {
  encodeNewAddr,
  encodeNewBridge,
  encodeNewRoute,
  encodeNewVeth,
  encodeSetHairpin,
  encodeSetInetConf,
  encodeSetLinkUp,
  IPV4_DEVCONF,
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

  it('makes a veth in one request: this end up, on its bridge, both MACs; the peer down', () => {
    const b = encodeNewVeth({
      name: 'veth0a',
      peerName: 'eth0',
      peerNetnsFd: 7,
      mac: '02:00:00:00:00:0a',
      peerMac: '02:00:00:00:00:0b',
      master: 5,
      up: true,
    });
    expect(b.readUInt32LE(16 + 8)).toBe(1); // ifi_flags IFF_UP on this end
    const top = attrs(b, 32, b.length);
    expect(top.map(([t]) => t)).toEqual([3, 1, 10, 18]); // IFNAME, ADDRESS, MASTER, LINKINFO
    expect(top[1]![1]).toEqual(Buffer.from([2, 0, 0, 0, 0, 0x0a]));
    expect(top[2]![1].readUInt32LE(0)).toBe(5);
    const info = attrs(top[3]![1], 0, top[3]![1].length);
    const [peer] = attrs(info[1]![1], 0, info[1]![1].length);
    // A veth peer cannot be created up (the kernel opens it before the pair is joined).
    expect(peer![1].readUInt32LE(8)).toBe(0);
    expect(attrs(peer![1], 16, peer![1].length)).toEqual([
      [3, Buffer.from('eth0\0')],
      [1, Buffer.from([2, 0, 0, 0, 0, 0x0b])],
      [28, Buffer.from([7, 0, 0, 0])],
    ]);
  });

  it('makes a bridge with a fixed MAC, up, exclusively', () => {
    const b = encodeNewBridge({ name: 'br0', mac: '02:11:22:33:44:55', up: true, mtu: 1400 });
    expect(b.readUInt16LE(6)).toBe(0x605);
    const top = attrs(b, 32, b.length);
    expect(top.map(([t]) => t)).toEqual([3, 1, 4, 18]);
    expect(attrs(top[3]![1], 0, top[3]![1].length)).toEqual([[1, Buffer.from('bridge\0')]]);
  });

  it('sets hairpin through PF_BRIDGE with RTM_SETLINK, the only type that family takes', () => {
    const b = encodeSetHairpin(9, true);
    expect(b.readUInt16LE(4)).toBe(19); // RTM_SETLINK
    expect(b[16]).toBe(7); // AF_BRIDGE
    expect(b.readInt32LE(16 + 4)).toBe(9);
    const [protinfo] = attrs(b, 32, b.length);
    expect(protinfo![0]).toBe(12); // IFLA_PROTINFO
    expect(b.readUInt16LE(32 + 2) & 0x8000).toBe(0x8000); // nested: the bridge ignores a flat one
    expect(attrs(protinfo![1], 0, protinfo![1].length)).toEqual([[4, Buffer.from([1])]]);
  });

  it('writes per-device IPv4 settings in IFLA_AF_SPEC, with the link up in the same request', () => {
    const b = encodeSetInetConf(3, [[IPV4_DEVCONF.ARP_NOTIFY, 1]], { up: true });
    expect(b.readUInt32LE(16 + 8)).toBe(1);
    const [spec] = attrs(b, 32, b.length);
    expect(spec![0]).toBe(26); // IFLA_AF_SPEC
    const [inet] = attrs(spec![1], 0, spec![1].length);
    expect(inet![0]).toBe(2); // AF_INET
    const [conf] = attrs(inet![1], 0, inet![1].length);
    expect(conf![0]).toBe(1); // IFLA_INET_CONF
    expect(attrs(conf![1], 0, conf![1].length)).toEqual([[22, Buffer.from([1, 0, 0, 0])]]);
  });

  it('adds an IPv6 address without DAD, and an IPv4 one without the flag', () => {
    const v6 = encodeNewAddr(2, 'fd00::5/64', { noDad: true });
    expect(attrs(v6, 24, v6.length).map(([t]) => t)).toEqual([2, 1, 8]);
    expect(attrs(v6, 24, v6.length)[2]![1].readUInt32LE(0)).toBe(0x02); // IFA_F_NODAD
    const v4 = encodeNewAddr(2, '10.0.0.5/24', { noDad: true });
    expect(attrs(v4, 24, v4.length).map(([t]) => t)).toEqual([2, 1]);
  });

  it('adds a default route through a gateway, and a link-scope route without one', () => {
    const def = encodeNewRoute({ dst: '0.0.0.0/0', gateway: '10.88.0.1', ifindex: 2 });
    expect([def[16], def[17], def[20], def[22], def[23]]).toEqual([2, 0, 254, 0, 1]);
    expect(attrs(def, 28, def.length)).toEqual([
      [5, Buffer.from([10, 88, 0, 1])],
      [4, Buffer.from([2, 0, 0, 0])],
    ]);
    const link = encodeNewRoute({ dst: '10.1.0.0/16', ifindex: 3 });
    expect(link[22]).toBe(253); // RT_SCOPE_LINK
    expect(attrs(link, 28, link.length).map(([t]) => t)).toEqual([1, 4]);
    expect(() => encodeNewRoute({ dst: '::/0', gateway: '10.0.0.1', ifindex: 1 })).toThrow(
      InvalidArgumentError,
    );
  });
});
