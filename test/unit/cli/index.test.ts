// The command's error contract, in process: every error is one stderr line
// ending in its code, and the exit status says whose fault it was (2 the
// command line, 1 the operation), whatever raised it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cac } from 'cac';
import * as v from 'valibot';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands.js';
import { describeError, UsageError } from '../../../src/cli/errors.js';
import { commandAfterDashes } from '../../../src/cli/exec.js';
import { NETNS_FLAGS, NETWORK_FLAGS, readFlags } from '../../../src/cli/flags.js';
import { main } from '../../../src/cli/index.js';
import { InvalidArgumentError, PodnetError, PodnetSystemError } from '../../../src/errors.js';

/** A real CACError: cac's own check of a missing required argument. */
function cacError(): unknown {
  const cli = cac('podnet');
  cli.command('up <id>', '').action(() => undefined);
  cli.parse(['node', 'podnet', 'up'], { run: false });
  try {
    cli.runMatchedCommand();
  } catch (e) {
    return e;
  }
  throw new Error('cac accepted a missing argument');
}

describe('describeError', () => {
  it('keeps a PodnetError code; a failed operation exits 1', () => {
    const e = new PodnetError('ERR_PODNET_NO_SUCH_CONTAINER', "no container 'x' in '/run/podnet'");
    expect(describeError(e)).toEqual({
      code: 'ERR_PODNET_NO_SUCH_CONTAINER',
      exitCode: 1,
      line: "podnet: no container 'x' in '/run/podnet' [ERR_PODNET_NO_SUCH_CONTAINER]",
    });
    const sys = new PodnetSystemError('opening /x', { errno: 2, syscall: 'open', path: '/x' });
    expect(describeError(sys)).toMatchObject({ code: 'ENOENT', exitCode: 1 });
    expect(describeError(sys).line).toMatch(/ \[ENOENT\]$/);
  });

  it('makes usage and bad flag values exit 2', () => {
    expect(describeError(new UsageError("unknown command 'frob'"))).toEqual({
      code: 'ERR_PODNET_USAGE',
      exitCode: 2,
      line: "podnet: unknown command 'frob' [ERR_PODNET_USAGE]",
    });
    expect(describeError(new InvalidArgumentError("invalid --mac 'x'"))).toMatchObject({
      code: 'ERR_PODNET_INVALID_ARGUMENT',
      exitCode: 2,
    });
  });

  it("gives cac's parse errors the usage code", () => {
    expect(describeError(cacError())).toEqual({
      code: 'ERR_PODNET_USAGE',
      exitCode: 2,
      line: 'podnet: missing argument: podnet up <id> [ERR_PODNET_USAGE]',
    });
  });

  it('keeps the errno code of a node:fs error, once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'podnet-test-'));
    try {
      const err = await readFile(join(dir, 'absent')).catch((e: unknown) => e);
      expect(describeError(err)).toEqual({
        code: 'ENOENT',
        exitCode: 1,
        line: `podnet: no such file or directory, open '${join(dir, 'absent')}' [ENOENT]`,
      });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('reports a valibot error by its first issue and where it is', () => {
    let err: unknown;
    try {
      v.parse(v.object({ ports: v.array(v.number()) }), { ports: [1, 'x'] });
    } catch (e) {
      err = e;
    }
    const r = describeError(err);
    expect(r.code).toBe('ERR_PODNET_INVALID_INPUT');
    expect(r.exitCode).toBe(1);
    expect(r.line).toMatch(
      /^podnet: invalid input at ports\.1: .*number.* \[ERR_PODNET_INVALID_INPUT\]$/,
    );
  });

  it('gives plain errors and thrown non-errors a generic code, on one line', () => {
    expect(describeError(new TypeError('x is not a function\n    at y'))).toEqual({
      code: 'ERR_PODNET_INTERNAL',
      exitCode: 1,
      line: 'podnet: x is not a function; at y [ERR_PODNET_INTERNAL]',
    });
    // A Node error with a code that is not an errno (no errno, no syscall).
    const nodeErr = Object.assign(new TypeError('bad arg'), { code: 'ERR_INVALID_ARG_TYPE' });
    expect(describeError(nodeErr).code).toBe('ERR_PODNET_INTERNAL');
    expect(describeError('a string')).toMatchObject({
      code: 'ERR_PODNET_INTERNAL',
      line: 'podnet: a string [ERR_PODNET_INTERNAL]',
    });
    expect(describeError(new Error('')).line).toBe('podnet: unknown error [ERR_PODNET_INTERNAL]');
  });
});

/** readFlags over ARGV as cac matched it. */
function flagsOf(argv: string[], specs = NETWORK_FLAGS): ReturnType<typeof readFlags> {
  const cli = cac('podnet');
  cli.command('netns <action>', '').allowUnknownOptions();
  cli.parse(['node', 'podnet', ...argv], { run: false });
  return readFlags(cli, specs);
}

describe('readFlags', () => {
  it('keeps values exactly as typed (cac would turn 007 into 7)', () => {
    expect(flagsOf(['netns', 'ls', '--dir', '007'], NETNS_FLAGS)['dir']).toBe('007');
    expect(flagsOf(['netns', 'ls', '--netns-dir', '007'])['netns-dir']).toBe('007');
  });

  it('keeps what follows -- as typed under "--", flags there included, and checks none of it', () => {
    const flags = flagsOf(
      ['netns', 'exec', '--dir', '/x', '--', 'ls', '-l', '--frob', '007'],
      NETNS_FLAGS,
    );
    expect(flags['dir']).toBe('/x');
    expect(flags['--']).toEqual(['ls', '-l', '--frob', '007']);
    expect(commandAfterDashes(flags, 'podnet netns exec x')).toEqual([
      'ls',
      ['-l', '--frob', '007'],
    ]);
    expect(flagsOf(['netns', 'ls'])['--']).toBeUndefined();
    expect(() => commandAfterDashes(flagsOf(['netns', 'exec', '--']), 'podnet exec web1')).toThrow(
      new UsageError('missing command: podnet exec web1 -- CMD [ARG...]'),
    );
  });

  it('names an unknown or valueless flag as typed, not camelCased', () => {
    expect(() => flagsOf(['netns', 'ls', '--netnsDir', '/x'])).toThrow(
      new UsageError("unknown flag '--netnsDir' (see podnet netns --help)"),
    );
    expect(() => flagsOf(['netns', 'ls', '--netns-dir'])).toThrow(
      new UsageError("flag '--netns-dir' needs a value"),
    );
    expect(() => flagsOf(['netns', 'ls', '--json=yes'])).toThrow(
      new UsageError("flag '--json' takes no value"),
    );
  });
});

describe('main', () => {
  let err: string[];
  let out: string[];
  let dir: string;
  beforeEach(() => {
    err = [];
    out = [];
    dir = mkdtempSync(join(tmpdir(), 'podnet-test-'));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => err.push(String(s)) > 0);
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => out.push(String(s)) > 0);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 2 with one coded line for a wrong command line', async () => {
    const cases: [string[], string][] = [
      [[], 'podnet: missing command (see podnet --help) [ERR_PODNET_USAGE]\n'],
      [['frob'], "podnet: unknown command 'frob' (see podnet --help) [ERR_PODNET_USAGE]\n"],
      [['--frob'], "podnet: unknown flag '--frob' (see podnet --help) [ERR_PODNET_USAGE]\n"],
      [['gc', '-x'], "podnet: unknown flag '-x' (see podnet gc --help) [ERR_PODNET_USAGE]\n"],
      [['down'], 'podnet: missing argument: podnet down <id> [ERR_PODNET_USAGE]\n'],
      [['inspect', 'a', 'b'], "podnet: unexpected argument 'b' [ERR_PODNET_USAGE]\n"],
      [['inspect', 'a', 'b', 'c'], "podnet: unexpected arguments 'b', 'c' [ERR_PODNET_USAGE]\n"],
      [['up', 'c1', '-p'], "podnet: flag '-p/--publish' needs a value [ERR_PODNET_USAGE]\n"],
      [
        ['completion', 'fish'],
        "podnet: no completion for shell 'fish': bash or zsh [ERR_PODNET_USAGE]\n",
      ],
      [['stats', '--interval', '1'], 'podnet: --interval needs --watch [ERR_PODNET_USAGE]\n'],
      [
        ['stats', '--format', 'yaml'],
        "podnet: --format must be table, json, openmetrics; got 'yaml' [ERR_PODNET_USAGE]\n",
      ],
      [
        ['stats', '--json', '--format', 'table'],
        'podnet: --json and --format table disagree [ERR_PODNET_USAGE]\n',
      ],
      [
        ['stats', '--watch', '--format', 'openmetrics'],
        'podnet: --format openmetrics prints one exposition: it takes no --watch [ERR_PODNET_USAGE]\n',
      ],
    ];
    for (const [argv, line] of cases) {
      err.length = 0;
      expect(await main(argv), argv.join(' ')).toBe(2);
      expect(err.join(''), argv.join(' ')).toBe(line);
    }
    expect(out).toEqual([]);
  });

  it('exits 0 for --help and --version', async () => {
    // cac prints help and version with console.info.
    const info = vi.spyOn(console, 'info').mockImplementation(() => undefined);
    expect(await main(['--help'])).toBe(0);
    expect(String(info.mock.calls[0]?.[0])).toMatch(
      /Exit status:\n {2}0 {2}success\n {2}1 .*\n {2}2 {2}usage error/,
    );
    expect(await main(['stats', '--help'])).toBe(0);
    expect(String(info.mock.calls[1]?.[0])).toMatch(
      /Description:\n {2}Prints the counters[\s\S]*Examples:\n {2}\$ podnet stats /,
    );
    expect(await main(['--version'])).toBe(0);
    expect(String(info.mock.calls[2]?.[0])).toMatch(/^podnet\/0\.1\.0 /);
    expect(err).toEqual([]);
  });

  it('gives every command a description and examples in its help', async () => {
    const info = vi.spyOn(console, 'info').mockImplementation(() => undefined);
    for (const c of COMMANDS) {
      info.mockClear();
      expect(await main([c.name, '--help']), c.name).toBe(0);
      const help = String(info.mock.calls[0]?.[0]);
      expect(help, c.name).toContain(`Description:\n  ${c.description}`);
      expect(help, c.name).toMatch(new RegExp(`Examples:\n  \\$ .*podnet ${c.name}`));
    }
  });

  it('warns about each conflist it skips, and fails on it with --strict', async () => {
    const bad = join(dir, '10-bad.conflist');
    writeFileSync(bad, '{"cniVersion": "1.0.0", "name": "bad", "plugins": [{}]}');
    writeFileSync(join(dir, '20-torn.conflist'), '{"cniVersion"');
    expect(await main(['networks', '--cni-config-dir', dir, '--json'])).toBe(0);
    expect(err).toHaveLength(2);
    expect(err[0]).toMatch(
      new RegExp(
        `^podnet: warning: skipped ${bad}: .*plugins\\[0\\]\\.type.* \\[ERR_PODNET_CNI_CONFIG\\]\\n$`,
      ),
    );
    expect(err[1]).toMatch(
      /^podnet: warning: skipped .*20-torn\.conflist: .* \[ERR_PODNET_CNI_CONFIG\]\n$/,
    );
    // No valid file: the runtime's embedded default network, as podman always lists its default.
    expect(JSON.parse(out.join('')).map((n: { name: string }) => n.name)).toEqual(['podman']);

    err.length = 0;
    out.length = 0;
    expect(await main(['networks', 'ls', '--cni-config-dir', dir, '--strict'])).toBe(1);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(
      new RegExp(`^podnet: invalid CNI configuration ${bad}: .* \\[ERR_PODNET_CNI_CONFIG\\]\\n$`),
    );
    expect(out).toEqual([]);
  });
});
