// The reaper's records are read back from disk, so untrusted: what does not
// parse is kept for a person, a live owner's record is never touched, and a
// dead owner's record can only ever remove podnet-test-* namespaces.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { processIdentity } from '../../../src/process.js';
import { parseRecord, sweepTopologies, writeRecord } from '../../../src/testing/reaper.js';

// A pid that has exited (spawnSync reaps it), so no process has that identity.
const deadOwner = (): { pid: number; startTime: string } => ({
  pid: spawnSync('true').pid ?? 1,
  startTime: '1',
});

describe('topology records', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'podnet-test-reaper-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('parses only what writeRecord writes', () => {
    const ok = { version: 1, owner: { pid: 12, startTime: '345' }, namespaces: ['/run/netns/x'] };
    expect(parseRecord(JSON.stringify(ok))).toEqual(ok);
    for (const bad of [
      'not json',
      'null',
      JSON.stringify({ ...ok, version: 2 }),
      JSON.stringify({ ...ok, owner: { pid: -1, startTime: '1' } }),
      JSON.stringify({ ...ok, owner: { pid: 1.5, startTime: '1' } }),
      JSON.stringify({ ...ok, owner: { pid: 1, startTime: '1; rm' } }),
      JSON.stringify({ ...ok, namespaces: [1] }),
      JSON.stringify({ ...ok, namespaces: '/run/netns/x' }),
    ])
      expect(parseRecord(bad), bad).toBeUndefined();
  });

  it("keeps a live owner's record and one that does not parse", async () => {
    await writeRecord(dir, '0000000000000001', {
      version: 1,
      owner: processIdentity(process.pid),
      namespaces: [join(dir, 'podnet-test-000000000001')],
    });
    writeFileSync(join(dir, '0000000000000002.json'), '{"version":1');
    const report = await sweepTopologies({ dir });
    expect(report.removedTopologies).toEqual([]);
    expect(report.errors).toEqual([
      `${join(dir, '0000000000000002.json')}: not a topology record; kept`,
    ]);
    expect(readdirSync(dir).sort()).toEqual(['0000000000000001.json', '0000000000000002.json']);
  });

  it('removes nothing but podnet-test-* namespaces for a dead owner', async () => {
    const victim = join(dir, 'precious');
    writeFileSync(victim, 'keep me');
    await writeRecord(dir, '0000000000000003', {
      version: 1,
      owner: deadOwner(),
      namespaces: [victim, '/etc/../etc/passwd'],
    });
    const report = await sweepTopologies({ dir });
    expect(report.removedNamespaces).toEqual([]);
    expect(report.errors).toHaveLength(2);
    expect(existsSync(victim)).toBe(true);
    // The record stays, for a person to look at.
    expect(readdirSync(dir)).toContain('0000000000000003.json');
  });

  it("removes a dead owner's record whose namespaces are already gone", async () => {
    await writeRecord(dir, '0000000000000004', {
      version: 1,
      owner: deadOwner(),
      namespaces: [join(dir, 'podnet-test-00000000000a')],
    });
    const report = await sweepTopologies({ dir });
    expect(report).toEqual({
      removedTopologies: [join(dir, '0000000000000004.json')],
      removedNamespaces: [],
      errors: [],
    });
    expect(readdirSync(dir)).toEqual([]);
  });
});
