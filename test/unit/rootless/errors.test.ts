import { describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import {
  EngineStartError,
  engineFailureHint,
  PastaMissingError,
  PastaStartError,
  Slirp4netnsMissingError,
  Slirp4netnsStartError,
} from '../../../src/rootless/index.js';

describe('engine errors', () => {
  const tunLog = 'open("/dev/net/tun"): Permission denied\nchild failed(1)\n';

  it('says to chmod /dev/net/tun when the log shows EACCES on it', () => {
    expect(engineFailureHint(tunLog)).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(engineFailureHint('open("/dev/net/tun"): No such device')).toBeUndefined();
    expect(engineFailureHint('bind: Permission denied')).toBeUndefined();
    const e = new Slirp4netnsStartError('it exited with status 1 before it was ready', {
      reason: 'exited',
      path: '/usr/bin/slirp4netns',
      exitCode: 1,
      log: tunLog,
    });
    expect(isPodnetError(e)).toBe(true);
    expect(e).toBeInstanceOf(EngineStartError);
    expect(e).toMatchObject({
      code: 'ERR_PODNET_SLIRP4NETNS_START',
      engine: 'slirp4netns',
      reason: 'exited',
      exitCode: 1,
    });
    expect(e.message).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(e.message).toContain('child failed(1)');
  });

  it('names the engine in codes and messages', () => {
    const p = new PastaStartError('it was not ready within 500 ms', {
      reason: 'timeout',
      path: '/usr/bin/pasta',
    });
    expect(p).toMatchObject({
      code: 'ERR_PODNET_PASTA_START',
      engine: 'pasta',
      exitCode: null,
      log: '',
    });
    expect(p.message).toBe("starting pasta '/usr/bin/pasta': it was not ready within 500 ms");
    expect(new PastaMissingError(undefined).message).toContain('apt-get install passt');
    expect(new Slirp4netnsMissingError('/x').code).toBe('ERR_PODNET_SLIRP4NETNS_MISSING');
  });
});
