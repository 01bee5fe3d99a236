import { describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import {
  EngineMissingError,
  EngineStartError,
  engineFailureHint,
} from '../../../src/rootless/index.js';

describe('engine errors', () => {
  const tunLog = 'open("/dev/net/tun"): Permission denied\nchild failed(1)\n';

  it('says to chmod /dev/net/tun when the log shows EACCES on it', () => {
    expect(engineFailureHint(tunLog)).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(engineFailureHint('open("/dev/net/tun"): No such device')).toBeUndefined();
    expect(engineFailureHint('bind: Permission denied')).toBeUndefined();
    const e = new EngineStartError('slirp4netns', 'it exited with status 1 before it was ready', {
      reason: 'exited',
      path: '/usr/bin/slirp4netns',
      exitCode: 1,
      log: tunLog,
    });
    expect(isPodnetError(e)).toBe(true);
    expect(e).toBeInstanceOf(EngineStartError);
    expect(e).toMatchObject({
      code: 'ERR_PODNET_ENGINE_START',
      engine: 'slirp4netns',
      reason: 'exited',
      exitCode: 1,
    });
    expect(e.message).toMatch(/chmod 0666 \/dev\/net\/tun/);
    expect(e.message).toContain('child failed(1)');
  });

  it('names the engine in a field and in messages, not in the code', () => {
    const p = new EngineStartError('pasta', 'it was not ready within 500 ms', {
      reason: 'timeout',
      path: '/usr/bin/pasta',
    });
    expect(p).toMatchObject({
      code: 'ERR_PODNET_ENGINE_START',
      engine: 'pasta',
      exitCode: null,
      log: '',
    });
    expect(p.message).toBe("starting pasta '/usr/bin/pasta': it was not ready within 500 ms");
    expect(new EngineMissingError('pasta', undefined).message).toContain('apt-get install passt');
    expect(new EngineMissingError('slirp4netns', '/x')).toMatchObject({
      code: 'ERR_PODNET_ENGINE_MISSING',
      engine: 'slirp4netns',
    });
  });
});
