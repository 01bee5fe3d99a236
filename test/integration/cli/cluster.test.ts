// `podnet cluster up | ls | down`, run as a shell user runs it: the built
// CLI in a process of its own. The cluster outlives the command, its pods
// reach each other across nodes, gc leaves it alone, and down removes it.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot, type NetnsDir, TEST_PREFIX, tempNetnsDir } from '../../helpers/host.js';
import { podnetBin, runResult } from '../../helpers/process.js';

describe.skipIf(!isRoot)('podnet cluster', () => {
  let netns: NetnsDir;
  let records: string;
  let state: string;
  const cli = (args: string[]) =>
    runResult([process.execPath, podnetBin, ...args], { env: { PODNET_TESTING_DIR: records } });
  beforeEach(() => {
    netns = tempNetnsDir();
    records = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    state = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  });
  afterEach(async () => {
    await cli(['cluster', 'down', '--all']);
    await netns.cleanup();
    rmSync(records, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  });

  it('up builds a cluster that outlives the command; ls lists it; gc keeps it; down removes it', async () => {
    const up = await cli([
      'cluster',
      'up',
      'lab',
      '--nodes',
      '2',
      '--pods',
      '1',
      '--backend',
      'vxlan',
      '--pod-cidr',
      '10.248.0.0/16',
      '--netns-dir',
      netns.dir,
      '--json',
    ]);
    expect(up.code, up.stderr).toBe(0);
    const c = JSON.parse(up.stdout);
    expect(c).toMatchObject({ name: 'lab', backend: 'vxlan', podCidr: '10.248.0.0/16' });
    expect(c.nodes.map((n: { podSubnet: string }) => n.podSubnet)).toEqual([
      '10.248.1.0/24',
      '10.248.2.0/24',
    ]);
    expect(c.pods).toHaveLength(2);
    const [p1, p2] = c.pods as { name: string; namespace: string; ip: string }[];
    // After the command has exited: pod 1 reaches pod 2 across the nodes, by pod IP.
    const serve = `require('net').createServer((s) => s.end(s.remoteAddress)).listen(7070, '${p2!.ip}', () => console.log('ready'))`;
    const { spawn } = await import('node:child_process');
    const srv = spawn('nsenter', [`--net=${p2!.namespace}`, process.execPath, '-e', serve], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const ask = () =>
      runResult([
        'timeout',
        '2',
        'nsenter',
        `--net=${p1!.namespace}`,
        process.execPath,
        '-e',
        `require('net').connect(7070, '${p2!.ip}').on('data', (d) => process.stdout.write(d))`,
      ]);
    try {
      await new Promise<void>((resolve) => srv.stdout!.once('data', () => resolve()));
      expect((await ask()).stdout).toBe(p1!.ip);
      // A partition from the shell: kept in the switch, read back from there.
      const cut = await cli(['cluster', 'partition', 'lab', 'node1', '--json']);
      expect(cut.code, cut.stderr).toBe(0);
      expect(JSON.parse(cut.stdout)).toMatchObject({ groups: [['node1'], ['node2']] });
      expect((await cli(['cluster', 'ls'])).stdout).toMatch(/\snode1 \| node2\s+persistent$/m);
      expect((await ask()).stdout).toBe('');
      const healed = await cli(['cluster', 'heal', 'lab']);
      expect(healed.stdout.trim()).toBe('lab: whole');
      expect((await ask()).stdout).toBe(p1!.ip);
      expect((await cli(['cluster', 'partition', 'lab', 'node7'])).stderr).toMatch(
        /no node node7 in the cluster/,
      );
    } finally {
      srv.kill('SIGKILL');
    }

    const ls = await cli(['cluster', 'ls', '--json']);
    expect(JSON.parse(ls.stdout)).toMatchObject([{ name: 'lab', owner: 'persistent' }]);
    expect((await cli(['cluster', 'ls'])).stdout).toMatch(
      /^lab\s+vxlan\s+2\s+2\s+10\.248\.0\.0\/16\s+whole\s+persistent$/m,
    );
    expect((await cli(['cluster', 'up', 'lab', '--netns-dir', netns.dir])).stderr).toMatch(
      /a cluster named 'lab' exists/,
    );
    expect((await cli(['gc', '--json', '--state-dir', state, '--netns-dir', netns.dir])).code).toBe(
      0,
    );
    expect(readdirSync(netns.dir)).toHaveLength(5);

    const down = await cli(['cluster', 'down', 'lab']);
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout.trim()).toBe('removed lab');
    expect(readdirSync(netns.dir)).toEqual([]);
    expect(readdirSync(records)).toEqual([]);
    const again = await cli(['cluster', 'down', 'lab']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no cluster named 'lab'/);
  });
});
