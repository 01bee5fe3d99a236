import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CACHE_KIND, ResultCache } from '../../../src/cni/index.js';
import { PluginExecError, retryTextBusy, spawnPlugin } from '../../../src/cni/invoke/exec.js';
import { KeyedLocks, RwLock } from '../../../src/cni/lock.js';

const fixtures = join(import.meta.dirname, '../../fixtures/cni');
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
        join(fixtures, 'fake-hang'),
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
      const alive = (pid: number) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      for (let i = 0; i < 250 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
      expect(pids.filter(alive).map((p) => [p, readFileSync(`/proc/${p}/stat`, 'utf8')])).toEqual(
        [],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops reading at the output cap', async () => {
    const err = await spawnPlugin(
      join(fixtures, 'fake-big-output'),
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
      join(fixtures, 'fake-hang'),
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

describe('ResultCache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a file libcni wrote', async () => {
    const cache = new ResultCache(dir);
    mkdirSync(cache.resultsDir, { recursive: true });
    // As libcni's cacheAdd writes it (Go []byte is base64; omitempty fields absent).
    writeFileSync(
      join(cache.resultsDir, 'podman-abc-eth0'),
      JSON.stringify({
        kind: 'cniCacheV1',
        containerId: 'abc',
        config: Buffer.from('{"name":"podman"}').toString('base64'),
        ifName: 'eth0',
        networkName: 'podman',
        netns: '/run/netns/x',
        cniArgs: [['IgnoreUnknown', '1']],
        result: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.88.0.2/16' }] },
      }),
    );
    expect(await cache.read('podman', 'abc', 'eth0')).toEqual({
      network: 'podman',
      containerId: 'abc',
      ifName: 'eth0',
      netns: '/run/netns/x',
      args: [['IgnoreUnknown', '1']],
      capabilityArgs: {},
      config: '{"name":"podman"}',
      result: { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.88.0.2/16' }] },
      path: join(cache.resultsDir, 'podman-abc-eth0'),
    });
    expect(await cache.read('podman', 'abc', 'eth1')).toBeUndefined();
  });

  it('writes atomically with libcni field names and lists entries, skipping junk', async () => {
    const cache = new ResultCache(join(dir, 'c'));
    const entry = {
      network: 'n',
      containerId: 'c1',
      ifName: 'eth0',
      netns: '',
      args: [],
      capabilityArgs: {},
      config: '{}',
      result: undefined,
    };
    const file = await cache.write(entry);
    expect(readdirSync(cache.resultsDir)).toEqual(['n-c1-eth0']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { readFileSync } = await import('node:fs');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      kind: CACHE_KIND,
      containerId: 'c1',
      config: 'e30=',
      ifName: 'eth0',
      networkName: 'n',
    });
    await cache.write({ ...entry, network: 'n-2', containerId: 'c2' });
    await cache.write({ ...entry, network: 'm', containerId: 'c1' });
    writeFileSync(join(cache.resultsDir, 'junk'), 'x');
    writeFileSync(join(cache.resultsDir, 'n-other-eth0'), JSON.stringify({ kind: 'other' }));
    expect((await cache.list()).map((a) => `${a.network}/${a.containerId}`)).toEqual([
      'm/c1',
      'n-2/c2',
      'n/c1',
    ]);
    // 'n-2-c2-eth0' starts with 'n-' too: the network name inside decides.
    expect((await cache.list({ network: 'n' })).map((a) => a.containerId)).toEqual(['c1']);
    expect((await cache.list({ containerId: 'c1' })).map((a) => a.network)).toEqual(['m', 'n']);
    await cache.remove('n', 'c1', 'eth0');
    await cache.remove('n', 'c1', 'eth0');
    expect(await cache.list({ network: 'n' })).toEqual([]);
    expect(await new ResultCache(join(dir, 'none')).list()).toEqual([]);
  });

  it.each([
    ['not JSON', '{'],
    ['wrong kind', JSON.stringify({ kind: 'x', containerId: 'a', ifName: 'e', networkName: 'n' })],
    ['missing ifName', JSON.stringify({ kind: 'cniCacheV1', containerId: 'a', networkName: 'n' })],
    [
      'bad cniArgs',
      JSON.stringify({
        kind: 'cniCacheV1',
        containerId: 'a',
        ifName: 'e',
        networkName: 'n',
        cniArgs: [['a']],
      }),
    ],
  ])('reports a corrupt file (%s)', async (_what, text) => {
    const cache = new ResultCache(dir);
    mkdirSync(cache.resultsDir, { recursive: true });
    writeFileSync(cache.pathFor('n', 'a', 'e'), text);
    await expect(cache.read('n', 'a', 'e')).rejects.toMatchObject({ code: 'ERR_PODNET_CNI_CACHE' });
  });
});

describe('locks', () => {
  it('RwLock: shared together, exclusive alone, FIFO', async () => {
    const lock = new RwLock();
    const order: string[] = [];
    const r1 = await lock.acquire(false);
    const r2 = await lock.acquire(false);
    const w = lock.acquire(true).then((rel) => {
      order.push('w');
      return rel;
    });
    const r3 = lock.acquire(false).then((rel) => {
      order.push('r3');
      return rel;
    });
    await new Promise((r) => setTimeout(r, 1));
    expect(order).toEqual([]);
    r1();
    r2();
    (await w)();
    (await r3)();
    expect(order).toEqual(['w', 'r3']);
    expect(lock.idle).toBe(true);
  });

  it('KeyedLocks drops idle keys', async () => {
    const locks = new KeyedLocks();
    const a = await locks.acquire('a', true);
    const b = locks.acquire('a', true);
    expect(locks.size).toBe(1);
    a();
    a();
    (await b)();
    expect(locks.size).toBe(0);
  });
});
