// The reaper's records are read back from disk, so untrusted: what does not
// parse is kept for a person, a live owner's record is never touched, and a
// dead owner's record can only ever remove podnet-test-* namespaces.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
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

  it('parses a persistent cluster record, and refuses a cluster of the wrong shape', () => {
    const cluster = {
      name: 'lab',
      switch: '/run/netns/s',
      backend: 'vxlan',
      podCidr: '10.244.0.0/16',
      nodes: [
        {
          name: 'node1',
          namespace: '/run/netns/n',
          address: '10.1.1.1',
          podSubnet: '10.244.1.0/24',
        },
      ],
      pods: [{ name: 'a', node: 'node1', namespace: '/run/netns/p', ip: '10.244.1.2' }],
    };
    const ok = {
      version: 1,
      owner: { pid: 12, startTime: '345' },
      namespaces: [],
      persistent: true,
      cluster,
    };
    expect(parseRecord(JSON.stringify(ok))).toEqual(ok);
    for (const bad of [
      { ...ok, persistent: 'yes' },
      { ...ok, cluster: { ...cluster, nodes: [{ name: 'node1' }] } },
      { ...ok, cluster: { ...cluster, pods: 'none' } },
      { ...ok, cluster: { ...cluster, name: 7 } },
    ])
      expect(parseRecord(JSON.stringify(bad)), JSON.stringify(bad)).toBeUndefined();
  });

  it("keeps a persistent record whatever its owner; removes a dead owner's files with its record", async () => {
    await writeRecord(dir, '0000000000000005', {
      version: 1,
      owner: deadOwner(),
      namespaces: [],
      persistent: true,
    });
    await writeRecord(dir, '0000000000000006', { version: 1, owner: deadOwner(), namespaces: [] });
    mkdirSync(join(dir, '0000000000000006.d', 'node1', 'ipam'), { recursive: true });
    writeFileSync(join(dir, '0000000000000006.d', 'node1', 'ipam', '10.244.1.2'), 'c1');
    const report = await sweepTopologies({ dir });
    expect(report.removedTopologies).toEqual([join(dir, '0000000000000006.json')]);
    expect(readdirSync(dir)).toEqual(['0000000000000005.json']);
  });

  it('does not follow a files directory that is a symlink', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'podnet-test-reaper-'));
    try {
      writeFileSync(join(elsewhere, 'precious'), 'keep me');
      await writeRecord(dir, '0000000000000007', {
        version: 1,
        owner: deadOwner(),
        namespaces: [],
      });
      symlinkSync(elsewhere, join(dir, '0000000000000007.d'));
      const report = await sweepTopologies({ dir });
      expect(report.removedTopologies).toEqual([]);
      expect(report.errors[0]).toMatch(/0000000000000007\.json: .*not a directory/);
      expect(existsSync(join(elsewhere, 'precious'))).toBe(true);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
