// The package must work where npm runs no install scripts (npm 11 blocks
// dependency scripts by default) and no compiler exists: the prebuilt
// addon inside the tarball is what loads.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRoot, TEST_PREFIX } from '../helpers/host.js';

const root = new URL('../..', import.meta.url).pathname;

describe.skipIf(!isRoot)('the packed tarball', () => {
  const work = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('installs with scripts disabled and loads its prebuild with no compiler on PATH', () => {
    const out = execFileSync('npm', ['pack', '--json', '--pack-destination', work], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const [info] = JSON.parse(out.slice(out.indexOf('['))) as [
      { filename: string; files: { path: string }[] },
    ];
    const files = info.files.map((f) => f.path);
    expect(files).toContain('prebuilds/linux-x64/podnet.glibc.node');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    expect(files).toContain('bin/podnet.js');
    expect(
      files.some((f) => f.startsWith('build/') || f.startsWith('test/') || f.startsWith('src/')),
    ).toBe(false);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module' }),
    );
    execFileSync(
      'npm',
      ['install', '--ignore-scripts', '--prefer-offline', '--no-audit', join(work, info.filename)],
      {
        cwd: app,
        stdio: 'ignore',
      },
    );

    // PATH holds node and nothing else: no cc, no make, no python, no node-gyp.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    symlinkSync(process.execPath, join(bin, 'node'));
    const script = `
      import { NetworkNamespace, isPodnetError } from 'podnet';
      const ns = await NetworkNamespace.create({ dir: ${JSON.stringify(join(work, 'ns'))} });
      const lo = ns.linkStatsSync('lo');
      await ns.remove();
      console.log(JSON.stringify({ rx: lo.rxBytes, isPodnetError: typeof isPodnetError }));`;
    const result = execFileSync('node', ['--input-type=module', '-e', script], {
      cwd: app,
      env: { PATH: bin },
      encoding: 'utf8',
    });
    expect(JSON.parse(result)).toEqual({ rx: 0, isPodnetError: 'function' });
    execFileSync('umount', [join(work, 'ns')]);

    const cjs = execFileSync(
      'node',
      ['-e', "console.log(typeof require('podnet').NetworkNamespace)"],
      {
        cwd: app,
        env: { PATH: bin },
        encoding: 'utf8',
      },
    );
    expect(cjs.trim()).toBe('function'); // require(esm) for CommonJS callers
  });
});
