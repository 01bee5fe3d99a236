// The README examples that need only root and the kernel run as written, on
// this Node, against the built package (dist/). Each runs in a mount
// namespace of its own with a tmpfs on /run, so the /run/netns they use by
// default is theirs alone: nothing of another test or of the host is seen
// or touched, and their mounts end with the process. Their traffic stays
// inside the namespaces they create. (The CNI and Networking examples use
// the host's /etc/cni and /run/podnet, which tests never touch.)
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, TEST_PREFIX } from '../../helpers/host.js';
import { readmeBlocks } from '../../helpers/readme.js';

const execFileP = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));

function block(containing: string): string {
  const found = readmeBlocks().filter((b) => b.code.includes(containing));
  expect(found, `one README ts block containing ${containing}`).toHaveLength(1);
  return found[0]!.code;
}

describe.skipIf(!isRoot)('README examples, run', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    // A project that depends on podnet: this checkout, as a user's install would resolve it.
    mkdirSync(join(work, 'node_modules'));
    symlinkSync(root, join(work, 'node_modules', 'podnet'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  async function runAsWritten(name: string, code: string): Promise<string> {
    const file = join(work, `${name}.mjs`);
    writeFileSync(file, code);
    const { stdout } = await execFileP(
      'unshare',
      [
        '--mount',
        '--propagation',
        'private',
        '--',
        'sh',
        '-c',
        'mount -t tmpfs podnet-readme /run && exec "$0" "$1"',
        process.execPath,
        file,
      ],
      { cwd: work, encoding: 'utf8', timeout: 30_000 },
    );
    return stdout;
  }

  it('namespaces and link statistics', async () => {
    const out = await runAsWritten('netns', block("NetworkNamespace.create({ name: 'peer' })"));
    const [reply, spawned, counters] = out.trim().split('\n');
    expect(reply).toBe('hello');
    // ip's exit code and its line for veth1, run inside b by ns.spawn
    expect(spawned).toMatch(/^0 veth1@if\d+\s+UP\s+10\.231\.0\.2\/24/);
    // rxBytes of veth0 after the exchange, txPackets, and the links of a
    const m = /^(\d+) (\d+)n \[ (.*) \]$/.exec(counters ?? '');
    expect(m, counters).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(m![3]).toBe("'lo', 'veth0'");
  });

  it('podnet/testing topologies', async () => {
    const out = await runAsWritten('testing', block('createTopology({ hosts: 3 })'));
    expect(out.trim()).toMatch(
      /^\/run\/netns\/podnet-test-[0-9a-f]{12} (10\.231\.\d+)\.1 \1\.2 \1\.3$/,
    );
  });
});
