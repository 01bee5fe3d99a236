// The one netlink message builder: fixed headers, then attributes (nested
// ones get their length when closed). rtnetlink requests (rtnl-write.ts) and
// nf_tables batches (src/bridge/nft/) are both written with it. Attribute
// payloads are the caller's bytes: rtnetlink numbers are host order, most
// nf_tables numbers network order, so both writers are here.

const NLA_F_NESTED = 0x8000;
const NLMSG_HDRLEN = 16;

/**
 * Builds one netlink message: fixed headers, then (nested) attributes. It
 * writes into one buffer grown as needed (a buffer per attribute made a
 * 1000-element batch cost tens of milliseconds in allocations).
 */
export class MessageWriter {
  #buf = Buffer.alloc(256);
  #len = NLMSG_HDRLEN; // the header is written last, by finish()
  readonly #open: number[] = [];

  #room(n: number): number {
    const at = this.#len;
    if (at + n > this.#buf.length) {
      const grown = Buffer.alloc(Math.max(this.#buf.length * 2, at + n));
      this.#buf.copy(grown, 0, 0, at);
      this.#buf = grown;
    }
    this.#len = at + n;
    return at;
  }

  /** Appends bytes as they are (a fixed header such as ifinfomsg or nfgenmsg). */
  raw(b: Buffer): this {
    b.copy(this.#buf, this.#room(b.length));
    return this;
  }

  /** One attribute, padded to 4 bytes (the buffer is zeroed, so the padding is). */
  attr(type: number, payload: Buffer): this {
    const at = this.#room((4 + payload.length + 3) & ~3);
    this.#buf.writeUInt16LE(4 + payload.length, at);
    this.#buf.writeUInt16LE(type, at + 2);
    payload.copy(this.#buf, at + 4);
    return this;
  }

  /** A NUL-terminated string attribute. */
  str(type: number, s: string): this {
    const n = Buffer.byteLength(s, 'utf8') + 1;
    const at = this.#room((4 + n + 3) & ~3);
    this.#buf.writeUInt16LE(4 + n, at);
    this.#buf.writeUInt16LE(type, at + 2);
    this.#buf.write(s, at + 4, 'utf8');
    return this;
  }

  /** A 32-bit attribute in host (little-endian) order, as rtnetlink has them. */
  u8(type: number, v: number): this {
    return this.attr(type, Buffer.from([v & 0xff]));
  }

  u32(type: number, v: number): this {
    const at = this.#room(8);
    this.#buf.writeUInt16LE(8, at);
    this.#buf.writeUInt16LE(type, at + 2);
    this.#buf.writeUInt32LE(v >>> 0, at + 4);
    return this;
  }

  /** A 32-bit attribute in network order, as nf_tables has them (negatives as two's complement). */
  u32be(type: number, v: number): this {
    const at = this.#room(8);
    this.#buf.writeUInt16LE(8, at);
    this.#buf.writeUInt16LE(type, at + 2);
    this.#buf.writeUInt32BE(v >>> 0, at + 4);
    return this;
  }

  /** Opens a nested attribute; its length is filled in by end(). */
  begin(type: number): this {
    const at = this.#room(4);
    this.#buf.writeUInt16LE(type | NLA_F_NESTED, at + 2);
    this.#open.push(at);
    return this;
  }

  /** Closes the innermost nested attribute. */
  end(): this {
    const at = this.#open.pop()!;
    this.#buf.writeUInt16LE(this.#len - at, at);
    return this;
  }

  /** The message, with nlmsghdr in front (seq and pid are set by the native layer). */
  finish(type: number, flags: number): Buffer {
    this.#buf.writeUInt32LE(this.#len, 0);
    this.#buf.writeUInt16LE(type, 4);
    this.#buf.writeUInt16LE(flags, 6);
    return this.#buf.subarray(0, this.#len);
  }
}
