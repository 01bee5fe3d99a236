// The netfilter batch socket (native/nfnetlink.cc): the framing of a batch
// before it is sent, and the scan of the kernel's answers, from bytes. The
// batches sent here change nothing on any host: an empty one commits
// nothing, one with an unknown message type is refused whole.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchBegin, batchEnd } from '../../../src/bridge/nft/wire.js';
import { native } from '../../../src/native.js';

const NLMSG_ERROR = 2;

/** An NLMSG_ERROR reply to SEQ with CODE (0: an ack), as the kernel sends it with NETLINK_CAP_ACK. */
function answer(seq: number, code: number): Buffer {
  const b = Buffer.alloc(36);
  b.writeUInt32LE(36, 0);
  b.writeUInt16LE(NLMSG_ERROR, 4);
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(code, 16);
  b.writeUInt32LE(16, 20); // the echoed header's length
  b.writeUInt32LE(seq, 28);
  return b;
}

/** An nf_tables message of a type the subsystem does not have. */
function unknownMessage(): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(20, 0);
  b.writeUInt16LE((10 << 8) | 0xfe, 4);
  b.writeUInt16LE(0x5, 6); // REQUEST | ACK
  b[16] = 1; // NFPROTO_INET
  return b;
}

describe('the batch reply scanner', () => {
  it('maps acks and errors to their messages, and keeps an error over a later ack', () => {
    const replies = Buffer.concat([
      answer(101, 0),
      answer(100, -17),
      answer(100, 0),
      answer(102, 0),
    ]);
    expect(native.scanBatchReplies(replies, 100, 4)).toEqual([-17, 1, 1, 0]);
  });

  it('skips answers to other sequence numbers (below or above the batch)', () => {
    const replies = Buffer.concat([answer(99, -1), answer(104, -1), answer(0xffffffff, -1)]);
    expect(native.scanBatchReplies(replies, 100, 4)).toEqual([0, 0, 0, 0]);
  });

  it('refuses replies that do not frame', () => {
    const good = answer(100, 0);
    const long = Buffer.from(good);
    long.writeUInt32LE(40, 0); // longer than the bytes there
    const short = Buffer.from(good);
    short.writeUInt32LE(8, 0); // shorter than a header
    const cut = Buffer.from(good.subarray(0, 18)); // an error without its code
    cut.writeUInt32LE(18, 0);
    for (const b of [long, short, cut, good.subarray(0, 20)])
      expect(native.scanBatchReplies(b, 100, 1)).toBeNull();
  });

  it('never reads out of bounds on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(5), (bytes, count) => {
        const r = native.scanBatchReplies(Buffer.from(bytes), 0, count);
        expect(r === null || r.length === count).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('the netfilter batch socket', () => {
  it('refuses a buffer that is not a batch before sending it', () => {
    const sock = new native.NfnlSocket();
    try {
      const cut = Buffer.concat([batchBegin(), batchEnd()]).subarray(0, 30);
      const overlong = Buffer.concat([batchBegin(), batchEnd()]);
      overlong.writeUInt32LE(200, 0);
      for (const b of [Buffer.alloc(0), batchBegin(), cut, overlong, Buffer.alloc(3)])
        expect(() => sock.batch(b)).toThrow(
          expect.objectContaining({ errno: 22, syscall: 'batch' }),
        );
    } finally {
      sock.close();
    }
  });

  it('sends an empty batch, and reports the refused message of a bad one by index', () => {
    const sock = new native.NfnlSocket();
    try {
      const root = process.getuid?.() === 0;
      const empty = sock.batch(Buffer.concat([batchBegin(), batchEnd()]));
      expect(empty).toEqual(root ? null : [0, 1]); // unprivileged: EPERM against BEGIN
      const bad = sock.batch(Buffer.concat([batchBegin(), unknownMessage(), batchEnd()]));
      expect(bad).toEqual(root ? [1, 22] : [0, 1]); // EINVAL for message 1
    } finally {
      sock.close();
    }
  });

  it('is closed once closed', () => {
    const sock = new native.NfnlSocket();
    sock.close();
    expect(() => sock.batch(Buffer.concat([batchBegin(), batchEnd()]))).toThrow(
      expect.objectContaining({ errno: 9 }),
    );
  });
});
