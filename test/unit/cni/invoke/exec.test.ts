import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PluginExecError, retryTextBusy, spawnPlugin } from '../../../../src/cni/invoke/exec.js';
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
