import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  helperStartError,
  PluginExecError,
  retryTextBusy,
  spawnPlugin,
} from '../../../../src/cni/invoke/exec.js';
import { execError } from '../../../../src/cni/invoke/output.js';
import { isPodnetError, PodnetError, PodnetSystemError } from '../../../../src/errors.js';
import { fixture } from '../../../helpers/fixtures.js';
import { pidExists } from '../../../helpers/process.js';

const opts = { timeoutMs: 5000, maxOutputBytes: 1024 * 1024 };

describe('spawnPlugin', () => {
  it('passes exactly the given environment and stdin, and collects stdout, stderr and the status', async () => {
    const out = await spawnPlugin(
      '/bin/sh',
      'echo "$CNI_COMMAND:$HOME"; cat >&2; exit 3',
      { CNI_COMMAND: 'ADD', PATH: '/usr/bin:/bin' },
      opts,
    );
    // /bin/sh reads its script from stdin here, so stdin holds the program.
    expect(out.stdout.toString()).toBe('ADD:\n');
    expect(out.exitCode).toBe(3);
  });

  it('rejects with a spawn failure for a missing binary', async () => {
    const err = await spawnPlugin('/nonexistent/plugin', '', {}, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginExecError);
    expect((err as PluginExecError).failure).toMatchObject({
      kind: 'spawn',
      error: { code: 'ENOENT' },
    });
  });

  it('kills the plugin and its children at the deadline', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
    try {
      const pidfile = join(dir, 'pids');
      const started = Date.now();
      const err = await spawnPlugin(
        fixture('cni/fake-hang'),
        '{}',
        { PATH: '/usr/bin:/bin', FIXTURE_PIDFILE: pidfile },
        { ...opts, timeoutMs: 300 },
      ).catch((e: unknown) => e);
      expect((err as PluginExecError).failure).toEqual({ kind: 'timeout' });
      expect(Date.now() - started).toBeLessThan(3000);
      const { readFileSync } = await import('node:fs');
      const pids = readFileSync(pidfile, 'utf8').trim().split(' ').map(Number);
      expect(pids).toHaveLength(3);
      // Killed children are orphans that init reaps (here about once a second):
      // wait for that; none may be left, neither running nor as a zombie.
      for (let i = 0; i < 250 && pids.some(pidExists); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(
        pids.filter(pidExists).map((p) => [p, readFileSync(`/proc/${p}/stat`, 'utf8')]),
      ).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops reading at the output cap', async () => {
    const err = await spawnPlugin(
      fixture('cni/fake-big-output'),
      '{}',
      { PATH: '/usr/bin:/bin' },
      opts,
    ).catch((e: unknown) => e);
    expect((err as PluginExecError).failure).toEqual({ kind: 'too-large', limit: 1024 * 1024 });
  });

  it('aborts through a signal, before and during the run', async () => {
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    const early = await spawnPlugin('/bin/sleep', '', {}, { ...opts, signal: ac.signal }).catch(
      (e: unknown) => e,
    );
    expect((early as PluginExecError).failure.kind).toBe('aborted');
    const late = new AbortController();
    setTimeout(() => late.abort(), 50);
    const err = await spawnPlugin(
      fixture('cni/fake-hang'),
      '',
      { PATH: '/usr/bin:/bin', FIXTURE_PIDFILE: '/dev/null' },
      { ...opts, signal: late.signal },
    ).catch((e: unknown) => e);
    expect((err as PluginExecError).failure.kind).toBe('aborted');
  });
});

// podnet-exec's status record: stage and errno, two native int32s.
function record(stage: number, errno: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(stage, 0);
  b.writeInt32LE(errno, 4);
  return b;
}

// The same bytes for printf(1) in a shell standing in for the wrapper.
const printfBytes = (b: Buffer) =>
  [...b].map((x) => `\\${x.toString(8).padStart(3, '0')}`).join('');

describe('spawnPlugin with a wrapper (status pipe at fd 3, fds from 4)', () => {
  it('starts the plugin once the status pipe closes unwritten: onSpawn, then stdin; the fds are inherited', async () => {
    const events: string[] = [];
    // The wrapper's part, by a shell: show fd 4, close the status pipe, exec the "plugin".
    const out = await spawnPlugin(
      '/bin/sh',
      'config on stdin',
      { PATH: '/usr/bin:/bin' },
      { ...opts, onSpawn: () => void events.push('spawn') },
      ['-c', 'readlink /proc/self/fd/4; exec 3>&- 4<&-; exec cat'],
      {
        fds: [0],
        status: (r) => (r.length === 0 ? undefined : new Error(`report ${r.toString()}`)),
      },
    );
    expect(events).toEqual(['spawn']);
    const [fd4, config] = out.stdout.toString().split('\n');
    expect(fd4).toBe(readlinkSync('/proc/self/fd/0'));
    expect(config).toBe('config on stdin');
    expect(out.exitCode).toBe(0);
  });

  it('a report is a spawn failure with the decoded error: no onSpawn, no config', async () => {
    const spawned: number[] = [];
    const bytes = record(4, 13);
    const err = await spawnPlugin(
      '/bin/sh',
      '{}',
      { PATH: '/usr/bin:/bin' },
      { ...opts, onSpawn: (pid) => void spawned.push(pid) },
      ['-c', `printf '${printfBytes(bytes)}' >&3; exit 126`],
      { fds: [], status: (r) => helperStartError(r, '/opt/cni/bin/x', '/run/netns/node') },
    ).catch((e: unknown) => e);
    expect(spawned).toEqual([]);
    expect(err).toBeInstanceOf(PluginExecError);
    expect((err as PluginExecError).failure).toMatchObject({
      kind: 'spawn',
      error: {
        code: 'EACCES',
        errno: -13,
        syscall: 'spawn /opt/cni/bin/x',
        path: '/opt/cni/bin/x',
      },
    });
  });
});

describe('helperStartError', () => {
  const plugin = '/usr/lib/cni/bridge';
  const ns = '/run/netns/node';

  it('is nothing for no report, an exec failure as Node reports one, a setns failure with the namespace', () => {
    expect(helperStartError(Buffer.alloc(0), plugin, ns)).toBeUndefined();
    expect(helperStartError(record(4, 26), plugin, ns)).toMatchObject({
      code: 'ETXTBSY',
      errno: -26,
      syscall: `spawn ${plugin}`,
      path: plugin,
    });
    const setns = helperStartError(record(2, 22), plugin, ns);
    expect(setns).toBeInstanceOf(PodnetSystemError);
    expect(setns).toMatchObject({ code: 'EINVAL', syscall: 'setns', path: ns });
    expect(setns?.message).toContain('joining the network namespace');
  });

  it('a report podnet does not know is ERR_PODNET_EXEC_HELPER', () => {
    for (const bad of [Buffer.from([1, 2]), record(7, 1), record(4, 0)]) {
      const err = helperStartError(bad, plugin, ns);
      expect(isPodnetError(err) && err.code).toBe('ERR_PODNET_EXEC_HELPER');
      expect(err?.message).toContain(`network namespace '${ns}'`);
    }
  });

  it("becomes the runtime's error of a plugin that cannot be started", () => {
    const call = { plugin: 'bridge', command: 'ADD' as const, network: 'n' };
    const asRuntime = (report: Buffer) =>
      execError(
        call,
        plugin,
        new PluginExecError({ kind: 'spawn', error: helperStartError(report, plugin, ns)! }),
        1000,
      );
    expect(asRuntime(record(4, 2))).toMatchObject({
      code: 'ENOENT',
      syscall: 'spawn',
      path: plugin,
      message: `executing CNI plugin 'bridge': ENOENT: spawn '${plugin}'`,
    });
    expect(asRuntime(record(2, 1))).toMatchObject({
      code: 'EPERM',
      syscall: 'setns',
      path: ns,
      message: `executing CNI plugin 'bridge': EPERM: setns '${ns}'`,
    });
    const unknown = asRuntime(record(9, 9));
    expect(unknown).toBeInstanceOf(PodnetError);
    expect(unknown).toMatchObject({ code: 'ERR_PODNET_EXEC_HELPER' });
  });

  it('an exec ETXTBSY from the helper is retried as one from Node', async () => {
    let n = 0;
    const v = await retryTextBusy(
      async () => {
        if (++n < 2) {
          const error = helperStartError(record(4, 26), plugin, ns)!;
          throw new PluginExecError({ kind: 'spawn', error });
        }
        return 'ran';
      },
      { delayMs: 1 },
    );
    expect([v, n]).toEqual(['ran', 2]);
  });
});

describe('retryTextBusy', () => {
  const busy = () => {
    const error = Object.assign(new Error('spawn ETXTBSY'), { code: 'ETXTBSY' });
    return new PluginExecError({ kind: 'spawn', error });
  };

  it('retries ETXTBSY, then succeeds', async () => {
    let n = 0;
    const v = await retryTextBusy(
      async () => {
        if (++n < 3) throw busy();
        return 'ok';
      },
      { delayMs: 1 },
    );
    expect([v, n]).toEqual(['ok', 3]);
  });

  it('stops waiting when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 10);
    const err = await retryTextBusy(
      async () => {
        throw busy();
      },
      { delayMs: 10_000, signal: ac.signal },
    ).catch((e: unknown) => e);
    expect((err as PluginExecError).failure.kind).toBe('aborted');
  });

  it('gives up after the retries and does not retry other errors', async () => {
    let n = 0;
    await expect(
      retryTextBusy(
        async () => {
          n++;
          throw busy();
        },
        { delayMs: 1, retries: 2 },
      ),
    ).rejects.toBeInstanceOf(PluginExecError);
    expect(n).toBe(3);
    n = 0;
    await expect(
      retryTextBusy(async () => {
        n++;
        throw new Error('other');
      }),
    ).rejects.toThrow('other');
    expect(n).toBe(1);
  });
});
