// Pins the public surface: what `import('podnet')` gives at run time and
// what dist/index.d.ts declares, against public-api.json. A new export, or
// one that goes, fails here until the list is changed with it: the surface
// is a decision, not a side effect of `export *`. Runs on the build (npm
// test builds first), since the build is what users get.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');
const dts = join(root, 'dist/index.d.ts');
const pinned = JSON.parse(readFileSync(join(import.meta.dirname, 'public-api.json'), 'utf8')) as {
  values: string[];
  types: string[];
};

function declaredNames(): string[] {
  const program = ts.createProgram([dts], { noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(dts);
  const module = file && checker.getSymbolAtLocation(file);
  if (module === undefined) throw new Error(`${dts} declares no module`);
  return checker
    .getExportsOfModule(module)
    .map((s) => s.name)
    .sort();
}

describe('the public API', () => {
  it('is built (run `npm run build:ts` first)', () => {
    expect(existsSync(dts)).toBe(true);
  });

  it("has exactly the pinned run-time exports in import('podnet')", async () => {
    const podnet = (await import(join(root, 'dist/index.js'))) as Record<string, unknown>;
    expect(Object.keys(podnet).sort()).toEqual(pinned.values);
  });

  it('declares exactly the pinned names in dist/index.d.ts', () => {
    expect(declaredNames()).toEqual([...pinned.values, ...pinned.types].sort());
  });

  it('the source entry point exports the same values as the build', async () => {
    const src = (await import('../../src/index.js')) as Record<string, unknown>;
    expect(Object.keys(src).sort()).toEqual(pinned.values);
  });

  it('keeps wire codecs, fd numbers and the native binding out', () => {
    const names = [...pinned.values, ...pinned.types];
    for (const internal of [
      'encodeGetLink',
      'decodeLinks',
      'SLIRP4NETNS_READY_FD',
      'spawnPlugin',
      'startKeeper',
      'parseForwarderJob',
      'native',
    ]) {
      expect(names).not.toContain(internal);
    }
  });
});
