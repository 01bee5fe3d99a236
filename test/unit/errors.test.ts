import { describe, expect, it } from 'vitest';
import {
  isPodnetError,
  NftBatchError,
  NotANamespaceError,
  PodnetError,
  PodnetSystemError,
} from '../../src/errors.js';

describe('errors', () => {
  it('shapes system errors like Node: code, negative errno, syscall, path', () => {
    const e = new PodnetSystemError('opening x', { errno: 2, syscall: 'open', path: '/x' });
    expect(e).toMatchObject({
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
      path: '/x',
      name: 'PodnetSystemError',
    });
    expect(e.message).toBe("opening x: ENOENT: open '/x'");
    expect(e).toBeInstanceOf(PodnetError);
  });

  it('names the refused message of an nftables batch and the kernel answer', () => {
    const e = new NftBatchError('publishing ports', 'port tcp 80 in map dnat4any', 16);
    expect(e).toMatchObject({
      code: 'ERR_PODNET_NFT',
      errno: -16,
      step: 'port tcp 80 in map dnat4any',
    });
    expect(e.message).toBe('publishing ports: port tcp 80 in map dnat4any: EBUSY');
    const silent = new NftBatchError('making the table', 'message 3 of 30', 0);
    expect(silent.errno).toBe(0);
    expect(silent.message).toBe('making the table: message 3 of 30: no answer');
  });

  it('keeps the cause and recognises podnet errors without instanceof', () => {
    const cause = new Error('inner');
    const e = new NotANamespaceError('/etc/passwd', 'not an nsfs file', { cause });
    expect(e.cause).toBe(cause);
    expect(isPodnetError(e)).toBe(true);
    expect(isPodnetError(new Error('x'))).toBe(false);
    expect(isPodnetError(null)).toBe(false);
    // A copy of the package loaded twice brands with the same registered symbol.
    const foreign = Object.assign(new Error('y'), {
      [Symbol.for('podnet.error')]: true,
      code: 'ERR_PODNET_X',
    });
    expect(isPodnetError(foreign)).toBe(true);
  });
});
