// ns.spawn's pure parts, without root: the checks of its arguments, the
// exec helper's argv, and the reading of the helper's status record (input
// from another process).
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, isPodnetError, PodnetSystemError } from '../../../src/errors.js';
import { checkSpawnRequest, helperArgv, statusError } from '../../../src/netns/spawn.js';

function record(stage: number, errno: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(stage, 0);
  b.writeInt32LE(errno, 4);
  return b;
}

describe('checkSpawnRequest', () => {
  it('fills in what spawn would: no args, argv0 the command, three piped stdio entries', () => {
    expect(checkSpawnRequest('ls', undefined, undefined)).toEqual({
      command: 'ls',
      args: [],
      argv0: 'ls',
      uid: undefined,
      gid: undefined,
      stdio: ['pipe', 'pipe', 'pipe'],
      options: {},
    });
    const req = checkSpawnRequest('sh', ['-c', ''], {
      stdio: 'inherit',
      env: { A: '1' },
      cwd: '/tmp',
      timeout: 5,
      argv0: 'x',
      uid: 0,
      gid: 65534,
    });
    expect(req.stdio).toEqual(['inherit', 'inherit', 'inherit']);
    expect(req.options).toEqual({ env: { A: '1' }, cwd: '/tmp', timeout: 5 });
    expect([req.argv0, req.uid, req.gid]).toEqual(['x', 0, 65534]);
    // Entries left out are Node's defaults (pipes); extra ones stay where they are.
    expect(checkSpawnRequest('ls', [], { stdio: ['ignore'] }).stdio).toEqual([
      'ignore',
      undefined,
      undefined,
    ]);
    expect(checkSpawnRequest('ls', [], { stdio: [0, 1, 2, 'pipe', 'ipc'] }).stdio).toHaveLength(5);
  });

  it('refuses a shell, an empty or NUL-bearing argv, bad ids and bad shapes, with one line each', () => {
    const bad: [unknown, unknown, unknown, RegExp][] = [
      ['ls', [], { shell: true }, /never through a shell/],
      ['ls', [], { shell: '/bin/sh' }, /never through a shell/],
      ['', [], {}, /the command must be a non-empty string/],
      [42, [], {}, /the command must be/],
      ['l\0s', [], {}, /without NUL/],
      ['ls', 'x', {}, /must be an array of strings/],
      ['ls', ['a', 7], {}, /argument 1 must be a string/],
      ['ls', ['a\0'], {}, /argument 0/],
      ['ls', [], null, /must be an object/],
      ['ls', [], { uid: -1 }, /uid must be an integer/],
      ['ls', [], { gid: 1.5 }, /gid must be an integer/],
      ['ls', [], { uid: 2 ** 32 - 1 }, /uid must be an integer/],
      ['ls', [], { argv0: 'a\0' }, /argv0/],
      ['ls', [], { stdio: 7 }, /stdio must be a string or an array/],
    ];
    for (const [command, args, options, message] of bad) {
      let err: unknown;
      try {
        checkSpawnRequest(command, args, options);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify([command, args, options])).toBeInstanceOf(InvalidArgumentError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain('\n');
    }
    // An empty argument is an argument.
    expect(checkSpawnRequest('ls', [''], {}).args).toEqual(['']);
  });
});

describe('helperArgv', () => {
  it('is status fd, namespace fd, mode, uid, gid, file, argv0, args', () => {
    const req = checkSpawnRequest('ip', ['-j', 'link'], { argv0: 'iproute' });
    expect(helperArgv(req, 3, 4, false)).toEqual([
      '3',
      '4',
      'net',
      '-',
      '-',
      'ip',
      'iproute',
      '-j',
      'link',
    ]);
    const user = checkSpawnRequest('id', [], { uid: 0, gid: 0, stdio: [0, 1, 2, 'pipe'] });
    expect(helperArgv(user, 4, 5, true)).toEqual(['4', '5', 'user', '0', '0', 'id', 'id']);
  });
});

describe('statusError', () => {
  const req = checkSpawnRequest('nosuch', ['a'], {});
  const where = "starting 'nosuch' in network namespace '/run/netns/x'";

  it('says nothing for an empty record (the exec closed it)', () => {
    expect(statusError(Buffer.alloc(0), req, '/run/netns/x')).toBeUndefined();
  });

  it("reads an exec failure as Node's spawn error of the command", () => {
    const err = statusError(record(4, 2), req, '/run/netns/x');
    expect(err).toBeInstanceOf(PodnetSystemError);
    expect(err).toMatchObject({
      code: 'ENOENT',
      errno: -2,
      syscall: 'spawn nosuch',
      path: 'nosuch',
      spawnargs: ['a'],
      message: `${where}: ENOENT: spawn nosuch 'nosuch'`,
    });
    expect(statusError(record(4, 8), req, '/run/netns/x')).toMatchObject({ code: 'ENOEXEC' });
  });

  it('names the namespace for a failed setns, and the stage', () => {
    expect(statusError(record(2, 1), req, '/run/netns/x')).toMatchObject({
      code: 'EPERM',
      syscall: 'setns',
      path: '/run/netns/x',
      message: `${where}: joining the network namespace: EPERM: setns '/run/netns/x'`,
    });
    expect(statusError(record(1, 22), req, '/run/netns/x')?.message).toContain(
      "joining the namespace's user namespace",
    );
    expect(statusError(record(3, 1), req, '/run/netns/x')).toMatchObject({ syscall: 'setuid' });
  });

  it('refuses a record it does not know: short, long, unknown stage, errno 0 or negative', () => {
    for (const bad of [
      Buffer.from([1, 2, 3]),
      Buffer.concat([record(4, 2), Buffer.from([0])]),
      record(9, 2),
      record(0, 2),
      record(4, 0),
      record(4, -5),
    ]) {
      const err = statusError(bad, req, '/run/netns/x');
      expect(isPodnetError(err) && err.code).toBe('ERR_PODNET_EXEC_HELPER');
      expect(err?.message).toContain(where);
    }
  });
});
