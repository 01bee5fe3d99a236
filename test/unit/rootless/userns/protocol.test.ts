import { describe, expect, it } from 'vitest';
import {
  encodeMessage,
  parseHelperReply,
  parseSocketsRequest,
} from '../../../../src/rootless/userns/protocol.js';

const raw = (text: string): Buffer => Buffer.from(text);

describe('user namespace helper protocol', () => {
  it('reads back what each side writes', () => {
    const req = { domain: 2, type: 1, protocol: 0, count: 64, addr: 'AgAAUH8AAAE=' };
    expect(parseSocketsRequest(encodeMessage(req))).toEqual(req);
    expect(parseHelperReply(encodeMessage({ ok: true, pid: 42 }))).toEqual({ ok: true, pid: 42 });
    expect(parseHelperReply(encodeMessage({ ok: true }))).toEqual({ ok: true });
    const fail = { ok: false, errno: 97, syscall: 'socket' } as const;
    expect(parseHelperReply(encodeMessage(fail))).toEqual(fail);
  });

  it.each([
    'not json',
    '{"domain":2,"type":1,"protocol":0}',
    '{"domain":2,"type":1,"protocol":0,"count":0}',
    '{"domain":-1,"type":1,"protocol":0,"count":1}',
    '{"domain":2,"type":1,"protocol":0,"count":1,"addr":"!!"}',
    '{"domain":2,"type":1,"protocol":0,"count":1,"path":"/etc/shadow"}',
  ])('the helper refuses the request %s', (text) => {
    expect(parseSocketsRequest(raw(text))).toBeUndefined();
  });

  it.each([
    'not json',
    '{}',
    '{"ok":"yes"}',
    '{"ok":false}',
    '{"ok":false,"errno":"EPERM","syscall":"socket"}',
    '{"ok":true,"pid":0}',
    '{"ok":true,"fds":[0]}',
  ])('the owner refuses the reply %s', (text) => {
    expect(parseHelperReply(raw(text))).toBeUndefined();
  });
});
