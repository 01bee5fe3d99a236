// `podnet netns exec NAME -- CMD` and `podnet exec ID -- CMD`, run as users
// run them: the built CLI (bin/podnet.js imports dist/: `npm run build:ts`
// first) in a process of its own, the command's status as podnet's.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot, type NetnsDir, TEST_PREFIX, tempNetnsDir, uniq } from '../../helpers/host.js';
import { podnet, podnetBin } from '../../helpers/process.js';

/** The inode in a namespace link such as `net:[4026531993]`. */
function inodeOf(link: string): number {
  return Number(/\[(\d+)\]/.exec(link)?.[1]);
}

describe.skipIf(!isRoot)('podnet netns exec and podnet exec', () => {
  let tmp: NetnsDir;
  let stateDir: string;
  beforeEach(() => {
    tmp = tempNetnsDir();
    stateDir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  });
  afterEach(async () => {
    for (const f of readdirSync(stateDir).filter((n) => n.endsWith('.json')))
      await podnet([
        'down',
        f.slice(0, -'.json'.length),
        '--state-dir',
        stateDir,
        '--netns-dir',
        tmp.dir,
      ]);
    await tmp.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('netns exec runs the command inside the named namespace with its stdio and exit status', async () => {
    const name = `x-${uniq()}`;
    expect((await podnet(['netns', 'add', name, '--dir', tmp.dir])).code).toBe(0);
    const path = join(tmp.dir, name);
    const inside = await podnet([
      'netns',
      'exec',
      name,
      '--dir',
      tmp.dir,
      '--',
      'sh',
      '-c',
      'readlink /proc/self/ns/net; echo to-stderr >&2; exit 42',
    ]);
    expect(inside.code).toBe(42);
    expect(inodeOf(inside.stdout)).toBe(statSync(path).ino);
    expect(inside.stderr).toBe('to-stderr\n');
    // Flags after -- are the command's, not podnet's; --netns-dir names the same dir.
    const ip = await podnet([
      'netns',
      'exec',
      name,
      '--netns-dir',
      tmp.dir,
      '--',
      'ip',
      '-o',
      'link',
      'show',
    ]);
    expect(ip.code).toBe(0);
    expect(ip.stdout.trim().split('\n')).toHaveLength(1);
    expect(ip.stdout).toContain(' lo: ');
    expect((await podnet(['netns', 'rm', name, '--dir', tmp.dir])).code).toBe(0);
  });

  it('127 for a command not found, 126 for one that cannot run, 128+N for a signal, 125 for podnet', async () => {
    const name = `x-${uniq()}`;
    await podnet(['netns', 'add', name, '--dir', tmp.dir]);
    const exec = (...argv: string[]) => podnet(['netns', 'exec', name, '--dir', tmp.dir, ...argv]);

    const missing = await exec('--', 'podnet-no-such-command');
    expect(missing.code).toBe(127);
    expect(missing.stderr).toBe(
      `podnet: starting 'podnet-no-such-command' in network namespace '${join(tmp.dir, name)}': ENOENT: spawn podnet-no-such-command 'podnet-no-such-command' [ENOENT]\n`,
    );
    const plain = join(stateDir, 'plain');
    writeFileSync(plain, 'true\n', { mode: 0o644 });
    const denied = await exec('--', plain);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toContain(`: EACCES: spawn ${plain} '${plain}' [EACCES]\n`);
    expect((await exec('--', 'sh', '-c', 'kill -TERM $$')).code).toBe(128 + 15);

    const nons = await podnet(['netns', 'exec', 'nope', '--dir', tmp.dir, '--', 'true']);
    expect(nons.code).toBe(125);
    expect(nons.stderr).toMatch(
      /^podnet: opening network namespace '.*\/nope': ENOENT: .* \[ENOENT\]\n$/,
    );
    const nocmd = await exec();
    expect(nocmd.code).toBe(125);
    expect(nocmd.stderr).toBe(
      `podnet: missing command: podnet netns exec ${name} -- CMD [ARG...] [ERR_PODNET_USAGE]\n`,
    );
    expect((await exec('--frob', '--', 'true')).code).toBe(125);
    // The other netns actions keep their own statuses, and take no command.
    const add = await podnet(['netns', 'add', 'y', '--dir', tmp.dir, '--', 'true']);
    expect(add.code).toBe(2);
    expect(add.stderr).toBe('podnet: netns add takes no command after -- [ERR_PODNET_USAGE]\n');
  });

  it('SIGTERM to podnet reaches the command, whose status podnet then exits with', async () => {
    const name = `x-${uniq()}`;
    await podnet(['netns', 'add', name, '--dir', tmp.dir]);
    const cli = spawn(
      process.execPath,
      [
        podnetBin,
        'netns',
        'exec',
        name,
        '--dir',
        tmp.dir,
        '--',
        'sh',
        '-c',
        // Bounded, so a podnet that died without passing the signal on leaves nothing for long.
        'trap "echo got-term; exit 7" TERM; echo ready; i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    cli.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (d.includes('ready')) cli.kill('SIGTERM');
    });
    const [code] = await once(cli, 'exit');
    expect(code).toBe(7);
    expect(out).toBe('ready\ngot-term\n');
  });

  it("exec ID runs the command in the container's namespace; an unknown ID is 125", async () => {
    const id = `c-${uniq(3)}`;
    const dirs = ['--state-dir', stateDir, '--netns-dir', tmp.dir];
    const up = await podnet(['up', id, '--mode', 'none', '--json', ...dirs]);
    expect(up.stderr).toBe('');
    expect(up.code).toBe(0);
    const { SandboxKey } = JSON.parse(up.stdout) as { SandboxKey: string };
    const inside = await podnet(['exec', id, ...dirs, '--', 'readlink', '/proc/self/ns/net']);
    expect(inside.code).toBe(0);
    expect(inodeOf(inside.stdout)).toBe(statSync(SandboxKey).ino);
    expect((await podnet(['exec', id, ...dirs, '--', 'sh', '-c', 'exit 3'])).code).toBe(3);

    const unknown = await podnet(['exec', 'nosuch', ...dirs, '--', 'true']);
    expect(unknown.code).toBe(125);
    expect(unknown.stderr).toBe(
      `podnet: no container 'nosuch' in '${stateDir}' [ERR_PODNET_NO_SUCH_CONTAINER]\n`,
    );
    expect((await podnet(['down', id, ...dirs])).code).toBe(0);
  });
});
