// A netlink batch as a tree, for comparing podnet's nf_tables messages with
// the ones nft(8) sends (test/fixtures/nft/*.hex). Loads anywhere (no root).
import { readFileSync } from 'node:fs';
import { fixture } from './fixtures.js';

/** One attribute: its type (nested flag stripped), and its payload as hex or its children. */
export interface Attr {
  type: number;
  value?: string;
  children?: Attr[];
}

/** One message: type, flags, nfgenmsg family, attributes (seq left out: the addon numbers them). */
export interface Message {
  type: number;
  flags: number;
  family: number;
  attrs: Attr[];
}

const NLA_F_NESTED = 0x8000;

function attrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  for (let off = 0; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2);
    if (len < 4 || off + len > b.length) throw new Error(`attribute at ${off} overruns`);
    const payload = b.subarray(off + 4, off + len);
    out.push(
      type & NLA_F_NESTED
        ? { type: type & 0x3fff, children: attrs(payload) }
        : { type, value: payload.toString('hex') },
    );
    off += (len + 3) & ~3;
  }
  return out;
}

/** Splits a batch buffer into messages (bounds-checked: a test of an encoder must not misread it). */
export function messages(b: Buffer): Message[] {
  const out: Message[] = [];
  for (let off = 0; off < b.length; ) {
    const len = b.readUInt32LE(off);
    if (len < 20 || off + len > b.length) throw new Error(`message at ${off} overruns`);
    out.push({
      type: b.readUInt16LE(off + 4),
      flags: b.readUInt16LE(off + 6),
      family: b[off + 16]!,
      attrs: attrs(b.subarray(off + 20, off + len)),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

/** The batch nft sent for test/fixtures/nft/NAME.nft (captured by capture.mjs). */
export function capturedBatch(name: string): Message[] {
  return messages(
    Buffer.from(readFileSync(fixture(`nft/${name}.hex`), 'utf8').replace(/\s/g, ''), 'hex'),
  );
}
