import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/errors.js';
import {
  encodeNewAddr,
  encodeNewBridge,
  encodeNewFdb,
  encodeNewNeighbor,
  encodeNewRoute,
  encodeNewVeth,
  encodeNewVxlan,
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

// What iproute2 6.1 sent for flannel's VXLAN shape, captured in a throwaway
// namespace (underlay veth u0 = ifindex 3 at 192.168.77.1, flannel.1 =
// ifindex 5) with `strace -f -e trace=sendmsg -e write=3 CMD`, nlmsghdr
// included (its seq is ip's own; podnet's is set by the native layer).
const IPROUTE2 = {
  // ip link add flannel.1 address 0a:58:0a:f4:01:00 mtu 1450 type vxlan id 1
  //   local 192.168.77.1 dev u0 dstport 8472 nolearning
  vxlan:
    '80000000100005065b7d0f6b0000000000000000000000000000000000000000' +
    '0a0001000a580af40100000008000400aa0500000e000300666c616e6e656c2e' +
    '310000003c0012000900010076786c616e0000002c0002000800030003000000' +
    '080001000100000008000400c0a84d01050007000000000006000f0021180000',
  // ip neigh replace 10.244.2.0 lladdr 0a:58:0a:f4:02:00 dev flannel.1 nud permanent
  neigh:
    '300000001c000505667d0f6b00000000020000000500000080000000080001000af402000a0002000a580af402000000',
  // bridge fdb replace 0a:58:0a:f4:02:00 dev flannel.1 dst 192.168.77.2 self permanent
  fdbReplace:
    '300000001c000505667d0f6b000000000700000005000000c00002000a0002000a580af40200000008000100c0a84d02',
  // bridge fdb append (the same entry)
  fdbAppend:
    '300000001c00050c667d0f6b000000000700000005000000c00002000a0002000a580af40200000008000100c0a84d02',
  // ip route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
  route:
    '3400000018000506657d0f6b0000000002180000fe03000104000000080001000af40200080005000af402000800040005000000',
};

/**
 * A request as ip(8) would send it: podnet's writer marks every nest with
 * NLA_F_NESTED, ip(8) marks none (the kernel reads both alike), so the flag
 * is cleared on the nests of ATTRS (offset of the attributes) and down.
 */
function withoutNestedFlags(b: Buffer, attrsAt: number): Buffer {
  const out = Buffer.from(b);
  const walk = (start: number, end: number): void => {
    for (let off = start; off + 4 <= end; ) {
      const len = out.readUInt16LE(off);
      const type = out.readUInt16LE(off + 2);
      if (type & 0x8000) {
        out.writeUInt16LE(type & ~0x8000, off + 2);
        walk(off + 4, off + len);
      }
      off += (len + 3) & ~3;
    }
  };
  walk(attrsAt, out.length);
  return out;
}

/** The captured request with nlmsg_seq zeroed (podnet leaves it 0 for the native layer). */
function captured(hex: string): Buffer {
  const b = Buffer.from(hex, 'hex');
  b.writeUInt32LE(0, 8);
  return b;
}

describe("flannel's VXLAN shape, against iproute2's bytes", () => {
  it('a VXLAN device: name, VNI, local, underlay, port 8472, nolearning, MAC, MTU; created down', () => {
    const b = encodeNewVxlan({
      name: 'flannel.1',
      vni: 1,
      local: '192.168.77.1',
      underlayIfindex: 3,
      mac: '0a:58:0a:f4:01:00',
      mtu: 1450,
    });
    // Two differences, neither one the kernel sees: the nest flags (above),
    // and IFLA_INFO_KIND's length: ip(8) sends "vxlan" without its NUL (9),
    // podnet's writer NUL-terminates every string (10); the padded bytes are
    // the same zeros.
    const ip = captured(IPROUTE2.vxlan);
    expect(ip.readUInt16LE(72)).toBe(9);
    ip.writeUInt16LE(10, 72);
    expect(withoutNestedFlags(b, 32).toString('hex')).toBe(ip.toString('hex'));
    expect(b.readUInt32LE(16 + 8)).toBe(0); // ifi_flags: not up
    // Learning on and another port: the same attributes, other values.
    const other = encodeNewVxlan({
      name: 'vx0',
      vni: 0xffffff,
      local: '10.0.0.1',
      underlayIfindex: 9,
      port: 4789,
      learning: true,
    });
    const hex = other.toString('hex');
    expect(hex).toContain('05000700' + '01000000'); // IFLA_VXLAN_LEARNING 1
    expect(hex).toContain('06000f00' + '12b50000'); // IFLA_VXLAN_PORT 4789, network order
    expect(hex).toContain('08000100' + 'ffffff00'); // IFLA_VXLAN_ID
  });

  it('a permanent IPv4 neighbour with replace semantics, as ip neigh replace', () => {
    const b = encodeNewNeighbor({ ifindex: 5, ip: '10.244.2.0', mac: '0a:58:0a:f4:02:00' });
    expect(b.toString('hex')).toBe(captured(IPROUTE2.neigh).toString('hex'));
  });

  it('an FDB entry on the VXLAN device, self permanent, replaced or appended', () => {
    const entry = { ifindex: 5, mac: '0a:58:0a:f4:02:00', dst: '192.168.77.2' };
    // One header field differs: bridge(8) starts ndm_state at NUD_NOARP and
    // adds NUD_PERMANENT (0xc0); flannel (vishvananda/netlink) sends
    // NUD_PERMANENT alone (0x80), as podnet does. The kernel's VXLAN FDB
    // keeps the entry permanent either way (`bridge fdb` shows permanent).
    const asBridge = (b: Buffer) => {
      const c = Buffer.from(b);
      expect(c.readUInt16LE(16 + 8)).toBe(0x80);
      c.writeUInt16LE(0xc0, 16 + 8);
      return c.toString('hex');
    };
    expect(asBridge(encodeNewFdb(entry))).toBe(captured(IPROUTE2.fdbReplace).toString('hex'));
    expect(asBridge(encodeNewFdb({ ...entry, append: true }))).toBe(
      captured(IPROUTE2.fdbAppend).toString('hex'),
    );
  });

  it("an onlink route via the peer's /32, as ip route add ... onlink", () => {
    const b = encodeNewRoute({
      dst: '10.244.2.0/24',
      gateway: '10.244.2.0',
      ifindex: 5,
      onlink: true,
    });
    expect(b.toString('hex')).toBe(captured(IPROUTE2.route).toString('hex'));
    // Without it, rtm_flags stay 0.
    const plain = encodeNewRoute({ dst: '10.244.2.0/24', gateway: '10.244.2.0', ifindex: 5 });
    expect(plain.readUInt32LE(16 + 8)).toBe(0);
  });

  it('refuses bad input with one typed line', () => {
    const vx = { name: 'flannel.1', vni: 1, local: '192.168.77.1', underlayIfindex: 3 };
    for (const bad of [
      { ...vx, name: '' },
      { ...vx, name: 'a-name-too-long-for-linux' },
      { ...vx, vni: 1 << 24 },
      { ...vx, vni: 1.5 },
      { ...vx, local: 'fd00::1' },
      { ...vx, local: '192.168.77' },
      { ...vx, underlayIfindex: 0 },
      { ...vx, port: 0 },
      { ...vx, port: 65536 },
      { ...vx, mac: '0a:58:0a:f4:01' },
      { ...vx, mtu: 10 },
    ]) {
      expect(() => encodeNewVxlan(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => encodeNewNeighbor({ ifindex: 5, ip: '10.244.2.0', mac: 'zz' })).toThrow(
      /MAC address/,
    );
    expect(() =>
      encodeNewNeighbor({ ifindex: 5, ip: 'fd00::1', mac: '0a:58:0a:f4:02:00' }),
    ).toThrow(/IPv4/);
    expect(() => encodeNewFdb({ ifindex: -1, mac: '0a:58:0a:f4:02:00', dst: '1.2.3.4' })).toThrow(
      InvalidArgumentError,
    );
    expect(() => encodeNewFdb({ ifindex: 5, mac: '0a:58:0a:f4:02:00', dst: '1.2.3' })).toThrow(
      /IPv4/,
    );
  });
});
