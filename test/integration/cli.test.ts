import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot, type NetnsDir, podnet, tempNetnsDir } from '../helpers/host.js';
import { iptablesLines, removeNewChains } from './cni/cni-helpers.js';

describe.skipIf(!isRoot)('podnet command', () => {
  let tmp: NetnsDir;
  beforeEach(() => {
    tmp = tempNetnsDir();
  });
  afterEach(() => tmp.cleanup());

  it('demo serves HTTP through a published port on the default network and leaves nothing', async () => {
    const iptablesBefore = await iptablesLines();
    try {
      const { code, stdout } = await podnet(['demo', '--json']);
      expect(code).toBe(0);
      const report = JSON.parse(stdout);
      expect(report.requests).toBe(300);
      expect(report.network).toBe('podman');
      expect(report.inspect.Ports['80/tcp']).toEqual([
        { HostIp: '127.0.0.1', HostPort: String(report.hostPort) },
      ]);
      expect(report.stats.total.txBytes).toBeGreaterThan(report.responseBytes);
      expect(Object.values(report.leftovers).every(Boolean)).toBe(true);
      expect(existsSync(report.netns)).toBe(false);
      const text = await podnet(['demo']);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/1\. setting up container/);
      expect(text.stdout).toMatch(/nothing left behind/);
    } finally {
      // portmap and firewall keep their shared chains, as with podman.
      expect(await removeNewChains(iptablesBefore)).toEqual([]);
    }
  });

  it('netns add, ls and rm', async () => {
    expect((await podnet(['netns', 'add', 'one', '--dir', tmp.dir])).stdout.trim()).toBe(
      `${tmp.dir}/one`,
    );
    const ls = JSON.parse((await podnet(['netns', 'ls', '--dir', tmp.dir, '--json'])).stdout);
    expect(ls).toEqual([{ name: 'one', path: `${tmp.dir}/one` }]);
    expect((await podnet(['netns', 'rm', 'one', '--dir', tmp.dir])).code).toBe(0);
    expect(existsSync(`${tmp.dir}/one`)).toBe(false);
  });

  it('reports errors as one line on stderr with a non-zero exit', async () => {
    const missing = await podnet(['netns', 'rm', 'missing', '--dir', tmp.dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `podnet: opening network namespace '${tmp.dir}/missing': ENOENT: open '${tmp.dir}/missing'\n`,
    );
    const bad = await podnet(['netns', 'rm', '../etc', '--dir', tmp.dir]);
    expect(bad.stderr).toMatch(/\[ERR_PODNET_INVALID_ARGUMENT\]\n$/);
    expect((await podnet(['frobnicate'])).code).toBe(1);
  });
});
