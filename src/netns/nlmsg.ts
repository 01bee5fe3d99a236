// The one netlink message builder: fixed headers, then attributes (nested
// ones get their length when closed). rtnetlink requests (rtnl-write.ts) and
// nf_tables batches (src/bridge/nft/) are both written with it. Attribute
// payloads are the caller's bytes: rtnetlink numbers are host order, most
// nf_tables numbers network order, so both writers are here.

const NLA_F_NESTED = 0x8000;
const NLMSG_HDRLEN = 16;

/** Builds one netlink message: fixed headers, then (nested) attributes. */
export class MessageWriter {
  #chunks: Buffer[] = [];
  #len = 0;
  readonly #open: number[] = [];

  /** Appends bytes as they are (a fixed header such as ifinfomsg or nfgenmsg). */
  raw(b: Buffer): this {
    this.#chunks.push(b);
    this.#len += b.length;
    return this;
  }

  /** One attribute, padded to 4 bytes. */
  attr(type: number, payload: Buffer): this {
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(4 + payload.length, 0);
    hdr.writeUInt16LE(type, 2);
    this.raw(hdr).raw(payload);
    const pad = (4 - (payload.length % 4)) % 4;
    return pad ? this.raw(Buffer.alloc(pad)) : this;
  }

  /** A NUL-terminated string attribute. */
  str(type: number, s: string): this {
    return this.attr(type, Buffer.from(`${s}\0`, 'utf8'));
  }

  /** A 32-bit attribute in host (little-endian) order, as rtnetlink has them. */
  u32(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return this.attr(type, b);
  }

  /** A 32-bit attribute in network order, as nf_tables has them (negatives as two's complement). */
  u32be(type: number, v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0, 0);
    return this.attr(type, b);
  }

  /** Opens a nested attribute; its length is filled in by end(). */
  begin(type: number): this {
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(type | NLA_F_NESTED, 2);
    this.#open.push(this.#chunks.length, this.#len);
    return this.raw(hdr);
  }

  /** Closes the innermost nested attribute. */
  end(): this {
    const start = this.#open.pop()!;
    const index = this.#open.pop()!;
    this.#chunks[index]!.writeUInt16LE(this.#len - start, 0);
    return this;
  }

  /** The message, with nlmsghdr in front (seq and pid are set by the native layer). */
  finish(type: number, flags: number): Buffer {
    const hdr = Buffer.alloc(NLMSG_HDRLEN);
    hdr.writeUInt32LE(NLMSG_HDRLEN + this.#len, 0);
    hdr.writeUInt16LE(type, 4);
    hdr.writeUInt16LE(flags, 6);
    return Buffer.concat([hdr, ...this.#chunks]);
  }
}
