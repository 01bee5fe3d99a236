import { describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import { Slirp4netnsStartError, slirp4netnsFailureHint } from '../../../src/rootless/index.js';

describe('slirp4netns start errors', () => {
  const tunLog = 'open("/dev/net/tun"): Permission denied\nchild failed(1)\n';

  it('says to chmod /dev/net/tun when the log shows EACCES on it', () => {
    expect(slirp4netnsFailureHint(tunLog)).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(slirp4netnsFailureHint('open("/dev/net/tun"): No such device')).toBeUndefined();
    expect(slirp4netnsFailureHint('bind: Permission denied')).toBeUndefined();
    const e = new Slirp4netnsStartError('it exited with status 1 before it was ready', {
      reason: 'exited',
      path: '/usr/bin/slirp4netns',
      exitCode: 1,
      log: tunLog,
    });
    expect(isPodnetError(e)).toBe(true);
    expect(e).toMatchObject({
      code: 'ERR_PODNET_SLIRP4NETNS_START',
      reason: 'exited',
      exitCode: 1,
    });
    expect(e.message).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(e.message).toContain('child failed(1)');
  });
});
