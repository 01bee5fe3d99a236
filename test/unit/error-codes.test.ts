import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CniGcError } from '../../src/cni/errors.js';
import { isPodnetErrorCode, isSystemErrorCode, PODNET_ERROR_CODES } from '../../src/error-codes.js';
import { AggregatePodnetError, InvalidArgumentError, PodnetError } from '../../src/errors.js';
import { TeardownError } from '../../src/network/undo.js';

const root = join(import.meta.dirname, '../..');
const table = Object.keys(PODNET_ERROR_CODES);

function sources(dir: string): { path: string; text: string }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ path: relative(root, join(dir, f)), text: readFileSync(join(dir, f), 'utf8') }));
}

const src = sources(join(root, 'src'));
const tableFile = join('src', 'error-codes.ts');

describe('the error code table', () => {
  it('holds every ERR_PODNET_ code src/ mentions (code or comment)', () => {
    const unknown = src.flatMap(({ path, text }) =>
      [...text.matchAll(/ERR_PODNET_[A-Z0-9_]+/g)]
        .map((m) => m[0])
        .filter((code) => !Object.hasOwn(PODNET_ERROR_CODES, code))
        .map((code) => `${path}: ${code}`),
    );
    expect(unknown).toEqual([]);
  });

  it('has no code built at run time', () => {
    // A template literal or concatenation producing a code: `ERR_PODNET_${x}`, `${code}_TIMEOUT`.
    const built = src.flatMap(({ path, text }) =>
      [
        ...text.matchAll(/`[^`\n]*(?:ERR_PODNET_[A-Z0-9_]*\$\{|\}_[A-Z]+`)|'ERR_PODNET_\w*' \+/g),
      ].map((m) => `${path}: ${m[0]}`),
    );
    expect(built).toEqual([]);
  });

  it('has no entry that src/ never uses as a literal', () => {
    const rest = src
      .filter(({ path }) => path !== tableFile)
      .map(({ text }) => text)
      .join('\n');
    expect(table.filter((code) => !rest.includes(`'${code}'`))).toEqual([]);
  });

  it('gives every entry a one-line meaning, and the README lists each', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const [code, meaning] of Object.entries(PODNET_ERROR_CODES)) {
      expect(meaning).toMatch(/^[^\n]{10,100}$/);
      expect(readme).toContain(`| \`${code}\` |`);
    }
  });

  it('tells podnet codes and errno names from anything else', () => {
    expect(isPodnetErrorCode('ERR_PODNET_TEARDOWN')).toBe(true);
    expect(isPodnetErrorCode('ERR_PODNET_NO_SUCH_THING')).toBe(false);
    expect(isPodnetErrorCode('toString')).toBe(false);
    expect(isSystemErrorCode('EADDRINUSE')).toBe(true);
    expect(isSystemErrorCode('ERR_PODNET_TEARDOWN')).toBe(false);
    expect(isSystemErrorCode(17)).toBe(false);
  });
});

describe('the aggregate error shape', () => {
  const first = new InvalidArgumentError('first');
  const second = new Error('second');

  it('keeps a code, every failure in order, the first as cause', () => {
    const failures = [first, second, 'a string'];
    const e = new AggregatePodnetError('ERR_PODNET_TEARDOWN', 'removing things', failures);
    expect(e).toBeInstanceOf(PodnetError);
    expect(e).toMatchObject({ code: 'ERR_PODNET_TEARDOWN', name: 'AggregatePodnetError' });
    expect(e.errors).toEqual(failures);
    expect(e.cause).toBe(first);
    expect(e.message).toBe('removing things: 3 failure(s): first; second; a string');
    failures.push('later');
    expect(e.errors).toHaveLength(3);
  });

  it('is the shape of teardown and CNI GC failures', () => {
    const teardown = new TeardownError('c1', [first, second]);
    const gc = new CniGcError('net1', [second]);
    for (const e of [teardown, gc]) expect(e).toBeInstanceOf(AggregatePodnetError);
    expect(teardown).toMatchObject({ code: 'ERR_PODNET_TEARDOWN', id: 'c1', cause: first });
    expect(teardown.errors).toEqual([first, second]);
    expect(teardown.message).toContain('its state is kept');
    expect(gc).toMatchObject({ code: 'ERR_PODNET_CNI_GC', network: 'net1', cause: second });
    expect(gc.errors).toEqual([second]);
  });
});
