import { describe, expect, it } from 'vitest';
import {
  isPodnetError,
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
