import { describe, expect, it } from 'vitest';
import {
  encodeRequest,
  PROTOCOL_VERSION,
  parseHelperReply,
} from '../../../../src/rootless/userns/protocol.js';

/** A reply as native/userns-helper.cc lays it out. */
function reply(version: number, errno: number, pid: number, name = ''): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt32LE(version, 0);
  out.writeUInt32LE(errno, 4);
  out.writeUInt32LE(pid, 8);
  return Buffer.concat([out, Buffer.from(name, 'latin1')]);
}

describe('user namespace helper protocol', () => {
  it('lays a request out as the helper reads it', () => {
    const addr = Buffer.from('AgAAUH8AAAEAAAAAAAAAAA==', 'base64');
    const req = encodeRequest({ domain: 2, type: 1, protocol: 0, count: 64, addr });
    expect(req.length).toBe(20 + 16);
    expect([0, 4, 8, 12, 16].map((o) => req.readUInt32LE(o))).toEqual([
      PROTOCOL_VERSION,
      2,
      1,
      0,
      64,
    ]);
    expect(req.subarray(20)).toEqual(addr);
    expect(encodeRequest({ domain: 16, type: 3, protocol: 0, count: 1 }).length).toBe(20);
  });

  it.each([
    { domain: 2, type: 1, protocol: 0, count: 0 },
    { domain: 2, type: 1, protocol: 0, count: 254 },
    { domain: -1, type: 1, protocol: 0, count: 1 },
    { domain: 2, type: 1.5, protocol: 0, count: 1 },
    { domain: 2, type: 1, protocol: 0, count: 1, addr: Buffer.alloc(129) },
  ])('refuses to encode a request the helper cannot serve: %o', (req) => {
    expect(() => encodeRequest(req)).toThrow(RangeError);
  });

  it('reads the helper replies', () => {
    expect(parseHelperReply(reply(PROTOCOL_VERSION, 0, 42))).toEqual({ ok: true, pid: 42 });
    expect(parseHelperReply(reply(PROTOCOL_VERSION, 0, 0))).toEqual({ ok: true });
    expect(parseHelperReply(reply(PROTOCOL_VERSION, 98, 0, 'bind'))).toEqual({
      ok: false,
      errno: 98,
      syscall: 'bind',
    });
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['short', reply(PROTOCOL_VERSION, 0, 1).subarray(0, 11)],
    ['another version', reply(PROTOCOL_VERSION + 1, 0, 1)],
    ['a name on success', reply(PROTOCOL_VERSION, 0, 0, 'socket')],
    ['a failure without a name', reply(PROTOCOL_VERSION, 97, 0)],
    ['a failure with a pid', reply(PROTOCOL_VERSION, 97, 5, 'socket')],
    ['an errno out of range', reply(PROTOCOL_VERSION, 0x80000000, 0, 'socket')],
    ['a pid out of range', reply(PROTOCOL_VERSION, 0, 0x80000000)],
    ['a name that is not a call', reply(PROTOCOL_VERSION, 1, 0, 'bind\n; rm')],
    ['too long', reply(PROTOCOL_VERSION, 1, 0, 'x'.repeat(17))],
  ])('the owner refuses a reply: %s', (_label, data) => {
    expect(parseHelperReply(data)).toBeUndefined();
  });
});
