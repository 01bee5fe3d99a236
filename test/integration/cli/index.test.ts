import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isRoot, type NetnsDir, tempNetnsDir } from '../../helpers/host.js';
import { iptablesLines, removeNewChains } from '../../helpers/iptables.js';
import { type CliResult, podnet, podnetBin, runResult } from '../../helpers/process.js';

/** A preload that writes `dlopen` to stderr for every native module loaded. */
const COUNT_DLOPEN =
  'data:text/javascript,const o=process.dlopen;process.dlopen=function(...a){process.stderr.write("dlopen\\n");return o.apply(this,a)}';

/** Runs the podnet command in CWD, optionally with node flags before the script. */
function podnetIn(cwd: string, args: string[], nodeFlags: string[] = []): Promise<CliResult> {
  return runResult([process.execPath, ...nodeFlags, podnetBin, ...args], { cwd });
}

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

  it('reports errors as one coded line on stderr: 1 for a failed operation, 2 for usage', async () => {
    const missing = await podnet(['netns', 'rm', 'missing', '--dir', tmp.dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `podnet: opening network namespace '${tmp.dir}/missing': ENOENT: open '${tmp.dir}/missing' [ENOENT]\n`,
    );
    const bad = await podnet(['netns', 'rm', '../etc', '--dir', tmp.dir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^podnet: .* \[ERR_PODNET_INVALID_ARGUMENT\]\n$/);
    const cases: [string[], string][] = [
      [
        ['frobnicate'],
        "podnet: unknown command 'frobnicate' (see podnet --help) [ERR_PODNET_USAGE]\n",
      ],
      [
        ['netns', 'ls', '--frob', '--dir', tmp.dir],
        "podnet: unknown flag '--frob' (see podnet netns --help) [ERR_PODNET_USAGE]\n",
      ],
      // cac would report this one as an unknown `--netnsDir`.
      [
        ['netns', 'ls', '--netnsDir', tmp.dir],
        "podnet: unknown flag '--netnsDir' (see podnet netns --help) [ERR_PODNET_USAGE]\n",
      ],
      [
        ['netns', 'ls', '--netns-dir'],
        "podnet: flag '--netns-dir' needs a value [ERR_PODNET_USAGE]\n",
      ],
      [['netns'], 'podnet: missing argument: podnet netns <action> [name] [ERR_PODNET_USAGE]\n'],
    ];
    for (const [args, line] of cases) {
      const r = await podnet(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toBe(line);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    expect(existsSync(join(tmp.dir, 'missing'))).toBe(false);
  });

  it('netns takes --dir 007 as the directory 007, and --netns-dir as its other name', async () => {
    // Relative to the working directory; cac alone would pass the number 7 on.
    const path = join(tmp.dir, '007', 'one');
    const add = await podnetIn(tmp.dir, ['netns', 'add', 'one', '--dir', '007']);
    expect(add).toEqual({ code: 0, stdout: `${path}\n`, stderr: '' });
    expect(existsSync(path)).toBe(true);
    const ls = await podnetIn(tmp.dir, ['netns', 'ls', '--dir', '007', '--json']);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([{ name: 'one', path }]);
    const rm = await podnetIn(tmp.dir, ['netns', 'rm', 'one', '--netns-dir', '007']);
    expect(rm).toEqual({ code: 0, stdout: `removed ${path}\n`, stderr: '' });
    expect(existsSync(path)).toBe(false);
  });

  it('--help loads no native addon and exits 0; a command that needs it loads it', async () => {
    const help = await podnetIn(tmp.dir, ['--help'], ['--import', COUNT_DLOPEN]);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(/\nExit status:\n {2}0 {2}success\n/);
    const sub = await podnetIn(tmp.dir, ['stats', '--help'], ['--import', COUNT_DLOPEN]);
    expect(sub).toMatchObject({ code: 0, stderr: '' });
    expect(sub.stdout).toMatch(/\nExamples:\n {2}\$ podnet stats/);
    // The probe works: making a namespace does load the addon (listing
    // them does not: that is a readdir and a statfs).
    const add = await podnetIn(
      tmp.dir,
      ['netns', 'add', 'probe', '--dir', tmp.dir],
      ['--import', COUNT_DLOPEN],
    );
    expect(add.code).toBe(0);
    expect(add.stderr).toMatch(/^dlopen$/m);
    const rm = await podnetIn(tmp.dir, ['netns', 'rm', 'probe', '--dir', tmp.dir]);
    expect(rm.code).toBe(0);
  });
});
