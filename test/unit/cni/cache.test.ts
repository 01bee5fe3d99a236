import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CACHE_KIND, ResultCache } from '../../../src/cni/index.js';

describe('ResultCache', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("remove also takes a crashed write's temp file of that attachment, and only its", async () => {
    const cache = new ResultCache(dir);
    mkdirSync(cache.resultsDir, { recursive: true });
    const mine = join(cache.resultsDir, 'podman-abc-eth0.0123456789ab.tmp');
    const others = ['podman-abc-eth1.0123456789ab.tmp', 'podman-abcd-eth0.0123456789ab.tmp'];
    writeFileSync(mine, '{');
    for (const o of others) writeFileSync(join(cache.resultsDir, o), '{');
    await cache.remove('podman', 'abc', 'eth0');
    expect(readdirSync(cache.resultsDir).sort()).toEqual(others.sort());
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
