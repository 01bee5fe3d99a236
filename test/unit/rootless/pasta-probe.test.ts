import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isPodnetError } from '../../../src/errors.js';
import {
  PastaMissingError,
  PastaProbeError,
  parsePastaVersion,
  probePasta,
} from '../../../src/rootless/index.js';

const fixture = (name: string) =>
  new URL(`../../fixtures/rootless/${name}`, import.meta.url).pathname;

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

describe('probePasta', () => {
  const dir = mkdtempSync(join(tmpdir(), 'podnet-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };

  it('a missing binary is ERR_PODNET_PASTA_MISSING, naming the path', async () => {
    const err = await probePasta(join(dir, 'nope')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PastaMissingError);
    expect(isPodnetError(err)).toBe(true);
    expect((err as PastaMissingError).code).toBe('ERR_PODNET_PASTA_MISSING');
    expect((err as PastaMissingError).path).toBe(join(dir, 'nope'));
  });

  it('none on PATH is ERR_PODNET_PASTA_MISSING with the install hint', async () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = dir;
    try {
      const err = await probePasta().catch((e: unknown) => e);
      expect((err as PastaMissingError).code).toBe('ERR_PODNET_PASTA_MISSING');
      expect((err as PastaMissingError).message).toContain('apt-get install passt');
    } finally {
      process.env['PATH'] = saved;
    }
  });

  it('garbage output is a probe error', async () => {
    const err = await probePasta(fixture('pasta-garbage')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PastaProbeError);
    expect((err as PastaProbeError).code).toBe('ERR_PODNET_PASTA_PROBE');
  });

  it('accepts a version-less pasta whose --help (on stderr, status 1) lists what podnet needs', async () => {
    const path = fixture('pasta-hang');
    expect(await probePasta(path)).toEqual({ path, version: undefined });
  });

  it('refuses a pasta whose --help lacks an option podnet relies on', async () => {
    const old = script(
      'pasta',
      'case "$1" in --version) echo "pasta 2021_01_01.abc";; *) echo "--netns --pid --log-file" >&2;; esac',
    );
    const err = await probePasta(old).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PastaProbeError);
    expect((err as Error).message).toContain('--config-net');
  });
});
