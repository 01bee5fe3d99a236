import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../../src/errors.js';
import {
  EngineMissingError,
  EngineProbeError,
  parsePastaVersion,
  pastaSplicesLoopback,
  probePasta,
} from '../../../../src/rootless/index.js';
import { fixture } from '../../../helpers/fixtures.js';

describe('pasta --version parsing', () => {
  it("reads an upstream release's version", () => {
    expect(parsePastaVersion('pasta 2024_03_20.71dd405\nCopyright Red Hat\n')).toBe(
      '2024_03_20.71dd405',
    );
  });

  it("reads Debian's 'unknown version' as undefined", () => {
    expect(
      parsePastaVersion('pasta unknown version\nCopyright Red Hat\nGNU Affero GPL version 3\n'),
    ).toBeUndefined();
  });

  it('returns null for anything that is not pasta', () => {
    expect(parsePastaVersion('slirp4netns version 1.2.0\n')).toBeNull();
    expect(parsePastaVersion('')).toBeNull();
    expect(parsePastaVersion('garbage\npasta 1.0\n')).toBeNull();
  });
});

// `pasta --help` of Debian 12's passt (0.0~git20230309.7c7625d-1), as this
// machine prints it (on stderr, status 1): with no syslog socket, each line
// is preceded by pasta's report that sending it to syslog failed.
const debianHelp = readFileSync(fixture('rootless/pasta-debian12-help.txt'), 'utf8');
// The same text with the lines passt 2024_10_30 added to its usage, where
// it added them (after -U's block), for the release that changed the
// splice's target to the namespace's own address.
const newHelp = debianHelp.replace(
  '  --userns NSPATH',
  '  --host-lo-to-ns-lo\tDEPRECATED:\n\t\t\tTranslate host-loopback forwards to\n\t\t\tnamespace loopback\n  --userns NSPATH',
);

describe('whether a pasta splices loopback clients into the namespace', () => {
  it("Debian 12's pasta (no version, no --host-lo-to-ns-lo) does", () => {
    expect(debianHelp).toContain('--config-net');
    expect(pastaSplicesLoopback(debianHelp, undefined)).toBe(true);
  });

  it('a pasta whose help lists --host-lo-to-ns-lo does not, whatever its version says', () => {
    expect(newHelp).not.toBe(debianHelp);
    expect(pastaSplicesLoopback(newHelp, undefined)).toBe(false);
    expect(pastaSplicesLoopback(newHelp, '2024_10_30.ee7d0b6')).toBe(false);
  });

  it('judges a dated version when the help does not list the option', () => {
    expect(pastaSplicesLoopback(debianHelp, '2024_09_06.6b38f07')).toBe(true);
    expect(pastaSplicesLoopback(debianHelp, '2023_03_09.7c7625d')).toBe(true);
    expect(pastaSplicesLoopback(debianHelp, '2024_10_30.ee7d0b6')).toBe(false);
    expect(pastaSplicesLoopback(debianHelp, '2025_01_21.4f2c8e7')).toBe(false);
    // Not a date: podnet cannot tell, and takes the safe side.
    expect(pastaSplicesLoopback(debianHelp, 'git-7c7625d')).toBe(true);
  });

  it('the option named in prose, not as an option of its own, does not count', () => {
    const prose = `${debianHelp}\n    (see also --host-lo-to-ns-lo in newer versions)\n`;
    expect(pastaSplicesLoopback(prose, undefined)).toBe(true);
  });
});

describe('probePasta', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it('a missing binary is ERR_PODNET_ENGINE_MISSING, naming the path', async () => {
    const err = await probePasta(join(dir, 'nope')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineMissingError);
    expect(isPodnetError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_PODNET_ENGINE_MISSING', engine: 'pasta' });
    expect((err as EngineMissingError).path).toBe(join(dir, 'nope'));
  });

  it('none on PATH is ERR_PODNET_ENGINE_MISSING with the install hint', async () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = dir;
    try {
      const err = await probePasta().catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_PODNET_ENGINE_MISSING', engine: 'pasta' });
      expect((err as EngineMissingError).message).toContain('apt-get install passt');
    } finally {
      process.env['PATH'] = saved;
    }
  });

  it('garbage output is a probe error', async () => {
    const err = await probePasta(fixture('rootless/pasta-garbage')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineProbeError);
    expect(err).toMatchObject({ code: 'ERR_PODNET_ENGINE_PROBE', engine: 'pasta' });
  });

  it('accepts a version-less pasta whose --help (on stderr, status 1) lists what podnet needs', async () => {
    const path = fixture('rootless/pasta-hang');
    expect(await probePasta(path)).toEqual({ path, version: undefined, splicesLoopback: true });
  });

  it('reads the splice behaviour from --help, once per binary until the file changes', async () => {
    const runs = join(dir, 'runs');
    writeFileSync(runs, '');
    const help = join(dir, 'help.txt');
    writeFileSync(help, debianHelp);
    const fake = (version: string) =>
      script(
        'pasta-cached',
        `echo run >> ${runs}\ncase "$1" in --version) echo "pasta ${version}";; *) cat ${help} >&2; exit 1;; esac`,
      );
    const path = fake('unknown version');
    const first = await probePasta(path);
    expect(first).toEqual({ path, version: undefined, splicesLoopback: true });
    expect(await probePasta(path)).toBe(first);
    expect(readFileSync(runs, 'utf8').split('\n').filter(Boolean)).toHaveLength(2);
    // A new build at the same path is probed again.
    writeFileSync(help, newHelp);
    fake('2024_10_30.ee7d0b6');
    expect(await probePasta(path)).toEqual({
      path,
      version: '2024_10_30.ee7d0b6',
      splicesLoopback: false,
    });
    expect(readFileSync(runs, 'utf8').split('\n').filter(Boolean)).toHaveLength(4);
  });

  it('refuses a pasta whose --help lacks an option podnet relies on', async () => {
    const old = script(
      'pasta',
      'case "$1" in --version) echo "pasta 2021_01_01.abc";; *) echo "--netns --pid --log-file" >&2;; esac',
    );
    const err = await probePasta(old).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineProbeError);
    expect((err as Error).message).toContain('--config-net');
  });
});
