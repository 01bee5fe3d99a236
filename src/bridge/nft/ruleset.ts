// podnet's nftables table, `inet podnet`: its fixed structure and the set
// elements that stand for networks and containers. The rules never change
// after the table is made; a network is a few elements (its subnets, its
// bridge), a container's published ports are one map element per host port.
// So a setup and a teardown are element batches only, with no rule handles
// to find or keep. As nft would list it (test/fixtures/nft/structure.nft):
//
//   set subnets4/subnets6   every podnet network's subnets (interval)
//   set masq4/masq6         the subnets of networks with ipMasq
//   set bridges             every podnet network's bridge
//   map dnat4  ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//   map dnat4any           inet_proto . inet_service : ipv4_addr . inet_service
//   map dnat6, dnat6any    the same for IPv6
//   chain prerouting  (nat, dstnat)   fib daddr type local jump hostports
//   chain output      (nat, -100)     fib daddr type local jump hostports
//   chain hostports   dnat ip to ip daddr . meta l4proto . th dport map @dnat4
//                     meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat4any
//                     (and the IPv6 pair)
//   chain postrouting (nat, srcnat)
//     ct status dnat ip saddr @subnets4 ip daddr @subnets4 masquerade     hairpin
//     ct status dnat ip saddr 127.0.0.0/8 oifname @bridges masquerade     127.0.0.1 ports
//     ip saddr @masq4 ip daddr != @subnets4 ip daddr != 224.0.0.0/4 masquerade
//     (hairpin and ipMasq for IPv6; ::1 is never routed out, so no loopback rule)
//   chain forward (filter, 0)
//     ip daddr @subnets4 ct state established,related accept
//     ip saddr @subnets4 accept                   (and the same for IPv6)
//
// A specific host address is looked up before "any": its map's rule comes
// first. What differs from the CNI plugins is in docs/native-firewall.md.
import ipaddr from 'ipaddr.js';
import {
  BASE,
  batchBegin,
  batchEnd,
  bitwise,
  CMP,
  CT,
  cmp,
  ct,
  dnat,
  type Expr,
  fibDaddrType,
  lookup,
  META,
  masq,
  meta,
  NF_INET,
  NFT_SET,
  newChain,
  newRule,
  newSet,
  newTable,
  payload,
  REG,
  type SetElement,
  type SetSpec,
  setElements,
  VERDICT,
  verdict,
} from './wire.js';

/** The table's name (family inet). */
export const TABLE = 'podnet';

// nft datatype ids (nftables' enum datatypes) and their sizes in a key.
const TYPE_IPV4 = 7;
const TYPE_IPV6 = 8;
const TYPE_INET_PROTO = 12;
const TYPE_INET_SERVICE = 13;
const TYPE_IFNAME = 41;
const concatType = (...types: number[]): number => types.reduce((t, x) => (t << 6) | x, 0);
const IFNAMSIZ = 16;
// nft's byte orders, as it records them in a set's userdata.
const HOST_ORDER = 1;
const NETWORK_ORDER = 2;
const AF_INET = 2;
const AF_INET6 = 10;

const interval = (name: string, id: number, type: number, len: number): SetSpec => ({
  name,
  id,
  flags: NFT_SET.INTERVAL,
  keyType: type,
  keyLen: len,
  userdata: { keyByteorder: NETWORK_ORDER },
});

const dnatMap = (name: string, id: number, key: number[], keyLen: number, addr: number) => ({
  name,
  id,
  flags: NFT_SET.MAP,
  keyType: concatType(...key),
  keyLen,
  dataType: concatType(addr, TYPE_INET_SERVICE),
  // The address, then the port, each padded to 4 bytes.
  dataLen: (addr === TYPE_IPV4 ? 4 : 16) + 4,
  userdata: { keyByteorder: 0, dataByteorder: 0, concatKey: true, concatData: true },
});

/** Every set and map of the table, with its batch-local id. */
export const SETS = {
  subnets4: interval('subnets4', 1, TYPE_IPV4, 4),
  subnets6: interval('subnets6', 2, TYPE_IPV6, 16),
  masq4: interval('masq4', 3, TYPE_IPV4, 4),
  masq6: interval('masq6', 4, TYPE_IPV6, 16),
  bridges: {
    name: 'bridges',
    id: 5,
    flags: 0,
    keyType: TYPE_IFNAME,
    keyLen: IFNAMSIZ,
    userdata: { keyByteorder: HOST_ORDER },
  },
  dnat4: dnatMap('dnat4', 6, [TYPE_IPV4, TYPE_INET_PROTO, TYPE_INET_SERVICE], 12, TYPE_IPV4),
  dnat4any: dnatMap('dnat4any', 7, [TYPE_INET_PROTO, TYPE_INET_SERVICE], 8, TYPE_IPV4),
  dnat6: dnatMap('dnat6', 8, [TYPE_IPV6, TYPE_INET_PROTO, TYPE_INET_SERVICE], 24, TYPE_IPV6),
  dnat6any: dnatMap('dnat6any', 9, [TYPE_INET_PROTO, TYPE_INET_SERVICE], 8, TYPE_IPV6),
} satisfies Record<string, SetSpec>;

/** A set or map of the table, by name. */
export type SetName = keyof typeof SETS;

// Offsets in the IPv4 and IPv6 headers, and of the destination port in TCP and UDP.
const IP4_SADDR = 12;
const IP4_DADDR = 16;
const IP6_SADDR = 8;
const IP6_DADDR = 24;
const TH_DPORT = 2;
const RTN_LOCAL = 2;
const IPS_DST_NAT = 0x20;
const CT_STATE_ESTABLISHED_RELATED = 0x6;

// Registers loaded from ct and fib hold host-order numbers: little-endian
// on every CPU podnet ships for (x64, arm64).
const hostU32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
};

/** meta nfproto ipv4|ipv6: what nft puts before a header match in an inet table. */
const family = (v: 4 | 6): Expr[] => [
  meta(META.NFPROTO, REG.R1),
  cmp(REG.R1, CMP.EQ, Buffer.from([v === 4 ? AF_INET : AF_INET6])),
];

const addrLoad = (v: 4 | 6, which: 'saddr' | 'daddr'): Expr => {
  if (v === 4) return payload(BASE.NETWORK, which === 'saddr' ? IP4_SADDR : IP4_DADDR, 4, REG.R1);
  return payload(BASE.NETWORK, which === 'saddr' ? IP6_SADDR : IP6_DADDR, 16, REG.R1);
};

type SpecRef = { name: string; id: number };

const inSet = (s: SpecRef, invert = false): Expr => lookup(REG.R1, s, invert ? { invert } : {});

/** ct status dnat: the connection was DNATed (by any table). */
const dnated = (): Expr[] => [
  ct(CT.STATUS, REG.R1),
  bitwise(REG.R1, REG.R1, hostU32(IPS_DST_NAT), hostU32(0)),
  cmp(REG.R1, CMP.NEQ, hostU32(0)),
];

// A concatenated key is loaded member by member into consecutive 4-byte
// registers from R1 (an IPv6 address takes four); the map's data lands the
// same way from R1, so DNAT finds the address in R1 and the port in the
// register after it (R32_01 after an IPv4 address, R2 after an IPv6 one).
function hostportRules(): Expr[][] {
  return [
    [
      ...family(4),
      addrLoad(4, 'daddr'),
      meta(META.L4PROTO, REG.R32_01),
      payload(BASE.TRANSPORT, TH_DPORT, 2, REG.R32_02),
      lookup(REG.R1, SETS.dnat4, { dreg: REG.R1 }),
      dnat(AF_INET, REG.R1, REG.R32_01),
    ],
    [
      ...family(4),
      meta(META.L4PROTO, REG.R1),
      payload(BASE.TRANSPORT, TH_DPORT, 2, REG.R32_01),
      lookup(REG.R1, SETS.dnat4any, { dreg: REG.R1 }),
      dnat(AF_INET, REG.R1, REG.R32_01),
    ],
    [
      ...family(6),
      addrLoad(6, 'daddr'),
      meta(META.L4PROTO, REG.R2),
      payload(BASE.TRANSPORT, TH_DPORT, 2, REG.R32_05),
      lookup(REG.R1, SETS.dnat6, { dreg: REG.R1 }),
      dnat(AF_INET6, REG.R1, REG.R2),
    ],
    [
      ...family(6),
      meta(META.L4PROTO, REG.R1),
      payload(BASE.TRANSPORT, TH_DPORT, 2, REG.R32_01),
      lookup(REG.R1, SETS.dnat6any, { dreg: REG.R1 }),
      dnat(AF_INET6, REG.R1, REG.R2),
    ],
  ];
}

function postroutingRules(): Expr[][] {
  const { subnets4, subnets6, masq4, masq6, bridges } = SETS;
  return [
    [
      ...dnated(),
      ...family(4),
      addrLoad(4, 'saddr'),
      inSet(subnets4),
      addrLoad(4, 'daddr'),
      inSet(subnets4),
      masq(),
    ],
    [
      ...dnated(),
      ...family(4),
      payload(BASE.NETWORK, IP4_SADDR, 1, REG.R1),
      cmp(REG.R1, CMP.EQ, Buffer.from([127])),
      meta(META.OIFNAME, REG.R1),
      inSet(bridges),
      masq(),
    ],
    [
      ...family(4),
      addrLoad(4, 'saddr'),
      inSet(masq4),
      addrLoad(4, 'daddr'),
      inSet(subnets4, true),
      addrLoad(4, 'daddr'),
      bitwise(REG.R1, REG.R1, Buffer.from([0xf0, 0, 0, 0]), Buffer.alloc(4)),
      cmp(REG.R1, CMP.NEQ, Buffer.from([0xe0, 0, 0, 0])),
      masq(),
    ],
    [
      ...dnated(),
      ...family(6),
      addrLoad(6, 'saddr'),
      inSet(subnets6),
      addrLoad(6, 'daddr'),
      inSet(subnets6),
      masq(),
    ],
    [
      ...family(6),
      addrLoad(6, 'saddr'),
      inSet(masq6),
      addrLoad(6, 'daddr'),
      inSet(subnets6, true),
      payload(BASE.NETWORK, IP6_DADDR, 1, REG.R1),
      cmp(REG.R1, CMP.NEQ, Buffer.from([0xff])),
      masq(),
    ],
  ];
}

function forwardRules(): Expr[][] {
  const rules: Expr[][] = [];
  for (const v of [4, 6] as const) {
    const subnets = v === 4 ? SETS.subnets4 : SETS.subnets6;
    rules.push([
      ...family(v),
      addrLoad(v, 'daddr'),
      inSet(subnets),
      ct(CT.STATE, REG.R1),
      bitwise(REG.R1, REG.R1, hostU32(CT_STATE_ESTABLISHED_RELATED), hostU32(0)),
      cmp(REG.R1, CMP.NEQ, hostU32(0)),
      verdict(VERDICT.ACCEPT),
    ]);
    rules.push([...family(v), addrLoad(v, 'saddr'), inSet(subnets), verdict(VERDICT.ACCEPT)]);
  }
  return rules;
}

const toLocal = (): Expr[] => [
  fibDaddrType(REG.R1),
  cmp(REG.R1, CMP.EQ, hostU32(RTN_LOCAL)),
  verdict(VERDICT.JUMP, 'hostports'),
];

/**
 * The batch that makes the whole table. Its first message creates the
 * table exclusively: when the table exists, that message fails with EEXIST
 * and the kernel aborts the whole batch, so two processes racing to make it
 * leave exactly one table, made once.
 */
export function structureBatch(): Buffer[] {
  const DSTNAT = -100;
  const SRCNAT = 100;
  const FILTER = 0;
  return [
    batchBegin(),
    newTable(TABLE, true),
    newChain(TABLE, 'prerouting', { type: 'nat', hook: NF_INET.PRE_ROUTING, priority: DSTNAT }),
    newChain(TABLE, 'output', { type: 'nat', hook: NF_INET.LOCAL_OUT, priority: DSTNAT }),
    newChain(TABLE, 'hostports'),
    newChain(TABLE, 'postrouting', { type: 'nat', hook: NF_INET.POST_ROUTING, priority: SRCNAT }),
    newChain(TABLE, 'forward', { type: 'filter', hook: NF_INET.FORWARD, priority: FILTER }),
    ...Object.values(SETS).map((s) => newSet(TABLE, s)),
    newRule(TABLE, 'prerouting', toLocal()),
    newRule(TABLE, 'output', toLocal()),
    ...hostportRules().map((r) => newRule(TABLE, 'hostports', r)),
    ...postroutingRules().map((r) => newRule(TABLE, 'postrouting', r)),
    ...forwardRules().map((r) => newRule(TABLE, 'forward', r)),
    batchEnd(),
  ];
}

/** One element of one of the table's sets: what a batch adds or removes. */
export interface TableElement {
  set: SetName;
  element: SetElement;
}

/** A subnet as interval elements: its first address, and the first address past it (unless that wraps). */
export function subnetElements(cidr: string): { family: 4 | 6; elements: SetElement[] } {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  const bytes = addr.toByteArray();
  const bits = bytes.length * 8;
  const start = Buffer.from(bytes);
  // Clear the host bits: 10.88.0.1/16 is the interval of 10.88.0.0/16.
  for (let i = len; i < bits; i++) start[i >> 3]! &= ~(0x80 >> (i & 7));
  const elements: SetElement[] = [{ key: start }];
  if (len > 0) {
    const end = Buffer.from(start);
    // Add 2^(bits - len): one at bit (len - 1) counted from the top, with carry.
    let i = (len - 1) >> 3;
    let carry = 0x80 >> ((len - 1) & 7);
    while (carry && i >= 0) {
      const sum = end[i]! + carry;
      end[i] = sum & 0xff;
      carry = sum >> 8;
      i--;
    }
    if (!carry) elements.push({ key: end, intervalEnd: true });
  }
  return { family: addr.kind() === 'ipv4' ? 4 : 6, elements };
}

/** An interface name as an ifname key: NUL-padded to IFNAMSIZ. */
export function ifnameKey(name: string): Buffer {
  const b = Buffer.alloc(IFNAMSIZ);
  b.write(name, 'utf8');
  return b;
}

const PROTO = { tcp: 6, udp: 17 } as const;

const port4 = (port: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(port, 0);
  return b;
};

/** One published host port, checked: the map element it becomes. */
export interface PortElement {
  protocol: 'tcp' | 'udp';
  /** Undefined: any local address of the container address's family. */
  hostIP?: ipaddr.IPv4 | ipaddr.IPv6;
  hostPort: number;
  containerIP: ipaddr.IPv4 | ipaddr.IPv6;
  containerPort: number;
}

/** The map and element of one published port. */
export function portElement(p: PortElement): TableElement {
  const v6 = p.containerIP.kind() === 'ipv6';
  const proto = Buffer.from([PROTO[p.protocol], 0, 0, 0]);
  const keyTail = Buffer.concat([proto, port4(p.hostPort)]);
  const key = p.hostIP ? Buffer.concat([Buffer.from(p.hostIP.toByteArray()), keyTail]) : keyTail;
  const data = Buffer.concat([Buffer.from(p.containerIP.toByteArray()), port4(p.containerPort)]);
  const set: SetName = p.hostIP ? (v6 ? 'dnat6' : 'dnat4') : v6 ? 'dnat6any' : 'dnat4any';
  return { set, element: { key, data } };
}

/** The elements of a network: its subnets (and in the masquerade sets when it masquerades), its bridge. */
export function networkElements(
  bridge: string,
  subnets: readonly string[],
  masquerade: boolean,
): TableElement[] {
  const out: TableElement[] = [];
  for (const cidr of subnets) {
    const { family: v, elements } = subnetElements(cidr);
    for (const element of elements) {
      out.push({ set: v === 4 ? 'subnets4' : 'subnets6', element });
      if (masquerade) out.push({ set: v === 4 ? 'masq4' : 'masq6', element });
    }
  }
  out.push({ set: 'bridges', element: { key: ifnameKey(bridge) } });
  return out;
}

/** A batch adding ELEMENTS, one message each (so a refusal names its element). */
export function addBatch(elements: readonly TableElement[]): Buffer[] {
  return [
    batchBegin(),
    ...elements.map((e) => setElements('add', TABLE, e.set, [e.element])),
    batchEnd(),
  ];
}

/**
 * A batch removing ELEMENTS, two messages each: an add of the element as
 * it should be, then its delete. The add is a no-op when the element is
 * there with that data, makes it when it is absent (so the delete never
 * fails with ENOENT: removing twice is no error, on kernels without
 * NFT_MSG_DESTROYSETELEM too), and fails with EEXIST when the key is there
 * with other data: another container's port, which is then left alone.
 * Element I is at messages 1 + 2I (add) and 2 + 2I (delete).
 */
export function removeBatch(elements: readonly TableElement[]): Buffer[] {
  return [
    batchBegin(),
    ...elements.flatMap((e) => [
      setElements('add', TABLE, e.set, [e.element]),
      setElements('delete', TABLE, e.set, [e.element]),
    ]),
    batchEnd(),
  ];
}
