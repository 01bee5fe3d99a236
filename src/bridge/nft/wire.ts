// nf_tables over netlink: the messages of a batch (table, chain, set, rule,
// set elements) and the rule expressions podnet's table uses, encoded as
// libnftnl encodes them (linux/netfilter/nf_tables.h, nfnetlink.h). Pure
// functions from values to bytes, checked in the unit tests against the
// batch nft(8) itself sends for the same objects (test/fixtures/nft/).
// Numbers are in network order unless the kernel says otherwise (register
// contents such as ct status and the set userdata nft reads back).
import { MessageWriter } from '../../netns/nlmsg.js';

const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
/** NFPROTO_INET: tables holding IPv4 and IPv6 both. */
const NFPROTO_INET = 1;

/** nf_tables message types (enum nf_tables_msg_types). */
export const NFT_MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  NEWCHAIN: 3,
  NEWRULE: 6,
  NEWSET: 9,
  NEWSETELEM: 12,
  DELSETELEM: 14,
} as const;

// Netlink header flags.
const NLM_F = {
  REQUEST: 0x1,
  ACK: 0x4,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
} as const;

// enum nft_table_attributes, nft_chain_attributes, nft_hook_attributes
const NFTA_TABLE_NAME = 1;
const NFTA_TABLE_FLAGS = 2;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_HOOK = 4;
const NFTA_CHAIN_POLICY = 5;
const NFTA_CHAIN_TYPE = 7;
const NFTA_HOOK_HOOKNUM = 1;
const NFTA_HOOK_PRIORITY = 2;
// enum nft_rule_attributes, nft_list_attributes, nft_expr_attributes
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_EXPRESSIONS = 4;
const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
// enum nft_set_attributes
const NFTA_SET_TABLE = 1;
const NFTA_SET_NAME = 2;
const NFTA_SET_FLAGS = 3;
const NFTA_SET_KEY_TYPE = 4;
const NFTA_SET_KEY_LEN = 5;
const NFTA_SET_DATA_TYPE = 6;
const NFTA_SET_DATA_LEN = 7;
const NFTA_SET_ID = 10;
const NFTA_SET_USERDATA = 13;
// enum nft_set_elem_list_attributes, nft_set_elem_attributes, nft_data_attributes
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_FLAGS = 3;
const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;

/** enum nft_set_flags. */
export const NFT_SET = { INTERVAL: 0x4, MAP: 0x8 } as const;
const NFT_SET_ELEM_INTERVAL_END = 0x1;

/** Netfilter hooks of the inet family (enum nf_inet_hooks). */
export const NF_INET = { PRE_ROUTING: 0, LOCAL_IN: 1, FORWARD: 2, LOCAL_OUT: 3, POST_ROUTING: 4 };

/** Verdicts: NF_ACCEPT and nf_tables' own (enum nft_verdicts). */
export const VERDICT = { ACCEPT: 1, JUMP: -3 } as const;

/**
 * Registers: 0 is the verdict register; 1-4 are the 16-byte ones; 8-23
 * the 4-byte ones (NFT_REG32_00 is 8), overlapping them.
 */
export const REG = { VERDICT: 0, R1: 1, R2: 2, R32_01: 9, R32_02: 10, R32_05: 13 } as const;

function nfgenmsg(family: number, resId = 0): Buffer {
  const b = Buffer.alloc(4);
  b[0] = family;
  b.writeUInt16BE(resId, 2);
  return b;
}

const msgType = (msg: number): number => (NFNL_SUBSYS_NFTABLES << 8) | msg;

/** NFNL_MSG_BATCH_BEGIN for the nf_tables subsystem. */
export function batchBegin(): Buffer {
  return new MessageWriter()
    .raw(nfgenmsg(0, NFNL_SUBSYS_NFTABLES))
    .finish(NFNL_MSG_BATCH_BEGIN, NLM_F.REQUEST);
}

/** NFNL_MSG_BATCH_END: the kernel commits (or aborts) the batch here. */
export function batchEnd(): Buffer {
  return new MessageWriter()
    .raw(nfgenmsg(0, NFNL_SUBSYS_NFTABLES))
    .finish(NFNL_MSG_BATCH_END, NLM_F.REQUEST);
}

/**
 * One message of a batch: nfgenmsg of the inet family, then the attributes
 * `body` writes. Every message asks for an ack, so the native side knows
 * each one was taken.
 */
function message(msg: number, flags: number, body: (w: MessageWriter) => void): Buffer {
  const w = new MessageWriter().raw(nfgenmsg(NFPROTO_INET));
  body(w);
  return w.finish(msgType(msg), NLM_F.REQUEST | NLM_F.ACK | flags);
}

/** NEWTABLE; `exclusive`: fails with EEXIST when the table exists. */
export function newTable(name: string, exclusive: boolean): Buffer {
  const flags = exclusive ? NLM_F.CREATE | NLM_F.EXCL : 0;
  return message(NFT_MSG.NEWTABLE, flags, (w) => {
    w.str(NFTA_TABLE_NAME, name).u32be(NFTA_TABLE_FLAGS, 0);
  });
}

/** GETTABLE of one table, outside any batch: answered by the table, or ENOENT. */
export function getTable(name: string): Buffer {
  return message(NFT_MSG.GETTABLE, 0, (w) => {
    w.str(NFTA_TABLE_NAME, name);
  });
}

/** A base chain's hook. */
export interface ChainHook {
  type: 'nat' | 'filter';
  hook: number;
  priority: number;
}

/** NEWCHAIN: a regular chain, or a base chain (policy accept) on a hook. */
export function newChain(table: string, name: string, hook?: ChainHook): Buffer {
  return message(NFT_MSG.NEWCHAIN, NLM_F.CREATE, (w) => {
    w.str(NFTA_CHAIN_TABLE, table).str(NFTA_CHAIN_NAME, name);
    if (!hook) return;
    w.str(NFTA_CHAIN_TYPE, hook.type).u32be(NFTA_CHAIN_POLICY, VERDICT.ACCEPT);
    w.begin(NFTA_CHAIN_HOOK)
      .u32be(NFTA_HOOK_HOOKNUM, hook.hook)
      .u32be(NFTA_HOOK_PRIORITY, hook.priority)
      .end();
  });
}

/** How nft describes a set to itself (libnftnl's NFTNL_UDATA_SET_*), so `nft list` prints its elements as its own. */
export interface SetUserdata {
  /** Byte order of the key (nft's enum byteorder: 0 mixed, 1 host, 2 network). */
  keyByteorder: number;
  /** Byte order of a map's data. */
  dataByteorder?: number;
  /** A concatenated key or data: nft records it as a concatenation typeof. */
  concatKey?: boolean;
  concatData?: boolean;
}

// libnftnl's set userdata TLVs (type u8, length u8, value).
const UDATA_SET_KEYBYTEORDER = 0;
const UDATA_SET_DATABYTEORDER = 1;
const UDATA_SET_KEY_TYPEOF = 3;
const UDATA_SET_DATA_TYPEOF = 4;
const UDATA_SET_DATA_INTERVAL = 6;
const UDATA_TYPEOF_EXPR = 0;
const UDATA_TYPEOF_DATA = 1;
/** nft's expression type number of a concatenation (EXPR_CONCAT). */
const EXPR_CONCAT = 13;

function tlv(type: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, value.length]), value]);
}

// Host order is little-endian on every CPU podnet ships for (x64, arm64).
function u32host(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v, 0);
  return b;
}

function setUserdata(u: SetUserdata): Buffer {
  // The typeof of a plain concatenation: its kind, and no member data.
  const typeofConcat = Buffer.concat([
    tlv(UDATA_TYPEOF_EXPR, u32host(EXPR_CONCAT)),
    tlv(UDATA_TYPEOF_DATA, Buffer.alloc(0)),
  ]);
  const parts = [tlv(UDATA_SET_KEYBYTEORDER, u32host(u.keyByteorder))];
  if (u.dataByteorder !== undefined)
    parts.push(tlv(UDATA_SET_DATABYTEORDER, u32host(u.dataByteorder)));
  if (u.concatKey) parts.push(tlv(UDATA_SET_KEY_TYPEOF, typeofConcat));
  if (u.concatData) parts.push(tlv(UDATA_SET_DATA_TYPEOF, typeofConcat));
  if (u.dataByteorder !== undefined) parts.push(tlv(UDATA_SET_DATA_INTERVAL, u32host(0)));
  return Buffer.concat(parts);
}

/** A named set or map. */
export interface SetSpec {
  name: string;
  /** Batch-local id: rules in the same batch find the set by it. */
  id: number;
  flags: number;
  /** nft datatype id (concatenations: 6 bits per member). */
  keyType: number;
  keyLen: number;
  dataType?: number;
  dataLen?: number;
  userdata: SetUserdata;
}

/** NEWSET. */
export function newSet(table: string, s: SetSpec): Buffer {
  return message(NFT_MSG.NEWSET, NLM_F.CREATE, (w) => {
    w.str(NFTA_SET_TABLE, table).str(NFTA_SET_NAME, s.name);
    w.u32be(NFTA_SET_FLAGS, s.flags).u32be(NFTA_SET_KEY_TYPE, s.keyType);
    w.u32be(NFTA_SET_KEY_LEN, s.keyLen);
    if (s.dataType !== undefined && s.dataLen !== undefined)
      w.u32be(NFTA_SET_DATA_TYPE, s.dataType).u32be(NFTA_SET_DATA_LEN, s.dataLen);
    w.u32be(NFTA_SET_ID, s.id).attr(NFTA_SET_USERDATA, setUserdata(s.userdata));
  });
}

/** One rule expression: its name and the attributes of its NFTA_EXPR_DATA. */
export interface Expr {
  name: string;
  data(w: MessageWriter): void;
}

/** NEWRULE: EXPRS appended to CHAIN. */
export function newRule(table: string, chain: string, exprs: readonly Expr[]): Buffer {
  return message(NFT_MSG.NEWRULE, NLM_F.CREATE | NLM_F.APPEND, (w) => {
    w.str(NFTA_RULE_TABLE, table).str(NFTA_RULE_CHAIN, chain).begin(NFTA_RULE_EXPRESSIONS);
    for (const e of exprs) {
      w.begin(NFTA_LIST_ELEM).str(NFTA_EXPR_NAME, e.name).begin(NFTA_EXPR_DATA);
      e.data(w);
      w.end().end();
    }
    w.end();
  });
}

/** One set element: its key, a map's data, and whether it ends an interval. */
export interface SetElement {
  key: Buffer;
  data?: Buffer;
  intervalEnd?: boolean;
}

/**
 * NEWSETELEM (create; an element already there with the same data is no
 * error, with other data EEXIST) or DELSETELEM (ENOENT when absent).
 */
export function setElements(
  op: 'add' | 'delete',
  table: string,
  set: string,
  elements: readonly SetElement[],
): Buffer {
  const msg = op === 'add' ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM;
  return message(msg, op === 'add' ? NLM_F.CREATE : 0, (w) => {
    w.str(NFTA_SET_ELEM_LIST_TABLE, table).str(NFTA_SET_ELEM_LIST_SET, set);
    w.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
    for (const e of elements) {
      w.begin(NFTA_LIST_ELEM);
      if (e.intervalEnd) w.u32be(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
      w.begin(NFTA_SET_ELEM_KEY).attr(NFTA_DATA_VALUE, e.key).end();
      if (e.data && op === 'add') w.begin(NFTA_SET_ELEM_DATA).attr(NFTA_DATA_VALUE, e.data).end();
      w.end();
    }
    w.end();
  });
}

// ---- Expressions (each attribute order as libnftnl writes it) ----

/** enum nft_meta_keys used here. */
export const META = { OIFNAME: 7, NFPROTO: 15, L4PROTO: 16 } as const;
/** enum nft_ct_keys used here. */
export const CT = { STATE: 0, STATUS: 2 } as const;
/** enum nft_payload_bases. */
export const BASE = { NETWORK: 1, TRANSPORT: 2 } as const;
/** enum nft_cmp_ops used here. */
export const CMP = { EQ: 0, NEQ: 1 } as const;

/** meta KEY => DREG. */
export function meta(key: number, dreg: number): Expr {
  return { name: 'meta', data: (w) => w.u32be(2, key).u32be(1, dreg) };
}

/** ct KEY => DREG. */
export function ct(key: number, dreg: number): Expr {
  return { name: 'ct', data: (w) => w.u32be(2, key).u32be(1, dreg) };
}

/** payload load LEN bytes at BASE + OFFSET => DREG. */
export function payload(base: number, offset: number, len: number, dreg: number): Expr {
  return {
    name: 'payload',
    data: (w) => w.u32be(1, dreg).u32be(2, base).u32be(3, offset).u32be(4, len),
  };
}

/** cmp SREG OP VALUE. */
export function cmp(sreg: number, op: number, value: Buffer): Expr {
  return {
    name: 'cmp',
    data: (w) => w.u32be(1, sreg).u32be(2, op).begin(3).attr(NFTA_DATA_VALUE, value).end(),
  };
}

/** bitwise DREG = (SREG & MASK) ^ XOR. */
export function bitwise(sreg: number, dreg: number, mask: Buffer, xor: Buffer): Expr {
  return {
    name: 'bitwise',
    data: (w) =>
      w
        .u32be(1, sreg)
        .u32be(2, dreg)
        .u32be(3, mask.length)
        .begin(4)
        .attr(NFTA_DATA_VALUE, mask)
        .end()
        .begin(5)
        .attr(NFTA_DATA_VALUE, xor)
        .end(),
  };
}

/** lookup SREG in SET (by name, and by id for a set made in the same batch); a map's data => DREG. */
export function lookup(
  sreg: number,
  set: { name: string; id: number },
  opts: { dreg?: number; invert?: boolean } = {},
): Expr {
  return {
    name: 'lookup',
    data: (w) => {
      w.u32be(2, sreg);
      if (opts.dreg !== undefined) w.u32be(3, opts.dreg);
      w.str(1, set.name).u32be(4, set.id);
      if (opts.invert) w.u32be(5, 1); // NFT_LOOKUP_F_INV
    },
  };
}

/** fib daddr type => DREG (the address type of the destination: local, ...). */
export function fibDaddrType(dreg: number): Expr {
  const NFTA_FIB_F_DADDR = 2;
  const NFT_FIB_RESULT_ADDRTYPE = 3;
  return {
    name: 'fib',
    data: (w) => w.u32be(3, NFTA_FIB_F_DADDR).u32be(2, NFT_FIB_RESULT_ADDRTYPE).u32be(1, dreg),
  };
}

/** dnat to the address in REGADDR and the port in REGPROTO, for FAMILY (2 or 10). */
export function dnat(family: number, regAddr: number, regProto: number): Expr {
  const NFT_NAT_DNAT = 1;
  return {
    name: 'nat',
    data: (w) => w.u32be(1, NFT_NAT_DNAT).u32be(2, family).u32be(3, regAddr).u32be(5, regProto),
  };
}

/** masquerade: source NAT to the outgoing interface's address. */
export function masq(): Expr {
  return { name: 'masq', data: () => {} };
}

/** A verdict: accept, or jump to CHAIN. */
export function verdict(code: number, chain?: string): Expr {
  return {
    name: 'immediate',
    data: (w) => {
      w.u32be(1, REG.VERDICT).begin(2).begin(NFTA_DATA_VERDICT).u32be(NFTA_VERDICT_CODE, code);
      if (chain !== undefined) w.str(NFTA_VERDICT_CHAIN, chain);
      w.end().end();
    },
  };
}
