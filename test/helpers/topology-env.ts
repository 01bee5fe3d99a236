// Per-test directories for podnet/testing's topologies and clusters: the
// namespace mounts (`dir`) and the reaper's records (`recordDir`), both
// unique temp dirs. After each test whatever a record still names is swept
// (a test that failed before its `await using` let go), then both dirs go.
// For integration tests only (it imports host.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { sweepTopologies } from '../../src/testing/index.js';
import { type NetnsDir, TEST_PREFIX, tempNetnsDir } from './host.js';

/** The current test's directories: what createTopology and createCluster take as `dir` and `recordDir`. */
export interface TopologyDirs {
  readonly dir: string;
  readonly recordDir: string;
}

/**
 * Registers the beforeEach that makes a test's directories and the
 * afterEach that sweeps and removes them (call it inside the describe);
 * an afterEach registered after it runs before it.
 */
export function topologyDirsPerTest(): TopologyDirs {
  let netns: NetnsDir | undefined;
  let records: string | undefined;
  beforeEach(() => {
    netns = tempNetnsDir();
    records = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  });
  afterEach(async () => {
    if (records !== undefined) await sweepTopologies({ dir: records });
    await netns?.cleanup();
    if (records !== undefined) rmSync(records, { recursive: true, force: true });
    netns = records = undefined;
  });
  return {
    get dir() {
      if (!netns) throw new Error('topology dirs are made per test: read them inside one');
      return netns.dir;
    },
    get recordDir() {
      if (!records) throw new Error('topology dirs are made per test: read them inside one');
      return records;
    },
  };
}
