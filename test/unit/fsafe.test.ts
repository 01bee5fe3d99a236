// Trusted directories and recorded paths (src/fsafe.ts): checked on real
// temp directories, no root needed.
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPrivateDir, checkRecordedPath, resolveDir } from '../../src/fsafe.js';
import { tempDirs } from '../helpers/temp.js';

const temp = tempDirs();

describe('resolveDir', () => {
  it('normalises trailing slashes, dots and relative paths, and resolves symlinks once', () => {
    const root = temp();
    mkdirSync(join(root, 'real'));
    symlinkSync(join(root, 'real'), join(root, 'alias'));
    expect(resolveDir(`${root}/real/`)).toBe(join(root, 'real'));
    expect(resolveDir(`${root}//real/./`)).toBe(join(root, 'real'));
    expect(resolveDir(`${root}/alias`)).toBe(join(root, 'real'));
    // A missing tail is kept as given, below the resolved part that exists.
    expect(resolveDir(`${root}/alias/not/yet/`)).toBe(join(root, 'real', 'not', 'yet'));
    expect(resolveDir('relative')).toBe(join(process.cwd(), 'relative'));
  });
});

describe('checkPrivateDir', () => {
  it('takes a 0700 or 0755 directory of the caller, and a missing one', () => {
    const root = temp();
    expect(() => checkPrivateDir(root)).not.toThrow();
    chmodSync(root, 0o755);
    expect(() => checkPrivateDir(root)).not.toThrow();
    expect(() => checkPrivateDir(join(root, 'missing', 'deeper'))).not.toThrow();
  });

  it('refuses a directory group or others can write, even under a sticky /tmp', () => {
    const root = temp();
    for (const mode of [0o777, 0o775, 0o757, 0o1777]) {
      chmodSync(root, mode);
      expect(() => checkPrivateDir(root)).toThrow(
        expect.objectContaining({ code: 'ERR_PODNET_UNSAFE_PATH' }),
      );
    }
  });

  it('refuses a writable directory above, unless it is sticky', () => {
    const root = temp();
    mkdirSync(join(root, 'inner'), { mode: 0o700 });
    chmodSync(root, 0o777);
    expect(() => checkPrivateDir(join(root, 'inner'))).toThrow(/writable by group or others/);
    chmodSync(root, 0o1777);
    expect(() => checkPrivateDir(join(root, 'inner'))).not.toThrow();
  });

  it('refuses a symlink, a file and a relative path', () => {
    const root = temp();
    mkdirSync(join(root, 'real'));
    symlinkSync(join(root, 'real'), join(root, 'alias'));
    writeFileSync(join(root, 'file'), '');
    expect(() => checkPrivateDir(join(root, 'alias'))).toThrow(/symbolic link/);
    expect(() => checkPrivateDir(join(root, 'file'))).toThrow(/not a directory/);
    expect(() => checkPrivateDir('state')).toThrow(/not an absolute path/);
  });
});

describe('checkRecordedPath', () => {
  const name = /^cni-[0-9a-f-]{36}$/;
  const good = '/run/netns/cni-0c0ffee0-0000-4000-8000-000000000000';
  it('takes an absolute, normal path named as podnet names them', () => {
    expect(checkRecordedPath(good, name, 'a namespace')).toBe(good);
  });
  for (const bad of [
    '/etc/passwd',
    '/run/netns/../../etc/cni-0c0ffee0-0000-4000-8000-000000000000',
    '/run/netns/cni-x',
    'run/netns/cni-0c0ffee0-0000-4000-8000-000000000000',
    '/run/netns//cni-0c0ffee0-0000-4000-8000-000000000000',
  ]) {
    it(`refuses ${bad}`, () => {
      expect(() => checkRecordedPath(bad, name, 'a namespace')).toThrow(
        expect.objectContaining({ code: 'ERR_PODNET_UNSAFE_PATH' }),
      );
    });
  }
});
