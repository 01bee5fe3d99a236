import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot, type NetnsDir, tempNetnsDir } from '../helpers/host.js';

const execFileP = promisify(execFile);
const bin = new URL('../../bin/podnet.js', import.meta.url).pathname;

async function podnet(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [bin, ...args], {
      encoding: 'utf8',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.skipIf(!isRoot)('podnet command', () => {
  let tmp: NetnsDir;
  beforeEach(() => {
    tmp = tempNetnsDir();
  });
  afterEach(() => tmp.cleanup());

  it('demo moves traffic between two namespaces, reports their counters and removes them', async () => {
    const { code, stdout } = await podnet(['demo', '--json']);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.transferred).toBe(1024 * 1024);
    for (const l of report.links) expect(l.stats.rxBytes).toBeGreaterThanOrEqual(1024 * 1024);
    expect(report.links[0].stats.rxBytes).toBe(report.links[1].stats.txBytes);
    for (const path of report.namespaces) expect(existsSync(path)).toBe(false);
    const text = await podnet(['demo']);
    expect(text.stdout).toMatch(/RX BYTES/);
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
