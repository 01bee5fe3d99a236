// Pins the public surface: what `import('podnet')` gives at run time and
// what dist/index.d.ts declares, against public-api.json. A new export, or
// one that goes, fails here until the list is changed with it: the surface
// is a decision, not a side effect of `export *`. Runs on the build (npm
// test builds first), since the build is what users get.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');
const dts = join(root, 'dist/index.d.ts');
const pinned = JSON.parse(readFileSync(join(import.meta.dirname, 'public-api.json'), 'utf8')) as {
  values: string[];
  types: string[];
};

function publicSymbols(): { checker: ts.TypeChecker; symbols: ts.Symbol[] } {
  const program = ts.createProgram([dts], { noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(dts);
  const module = file && checker.getSymbolAtLocation(file);
  if (module === undefined) throw new Error(`${dts} declares no module`);
  return { checker, symbols: checker.getExportsOfModule(module) };
}

function declaredNames(): string[] {
  return publicSymbols()
    .symbols.map((s) => s.name)
    .sort();
}

// Types of podnet's own that a public declaration names but the entry point
// does not export: a user could get such a value and not name its type.
// Constructors and protected or private members are not for users.
function unnamedTypes(): string[] {
  const { checker, symbols } = publicSymbols();
  const names = new Set(symbols.map((s) => s.name));
  const resolve = (s: ts.Symbol | undefined): ts.Symbol | undefined =>
    s && s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
  const missing = new Set<string>();
  const internal = (n: ts.Node): boolean =>
    ts.isConstructorDeclaration(n) ||
    (ts.canHaveModifiers(n) &&
      (ts.getModifiers(n) ?? []).some(
        (m) => m.kind === ts.SyntaxKind.PrivateKeyword || m.kind === ts.SyntaxKind.ProtectedKeyword,
      ));
  const visit = (n: ts.Node): void => {
    if (internal(n)) return;
    if (ts.isTypeReferenceNode(n)) {
      const target = resolve(checker.getSymbolAtLocation(n.typeName));
      const file = target?.declarations?.[0]?.getSourceFile().fileName ?? '';
      const param = target !== undefined && (target.flags & ts.SymbolFlags.TypeParameter) !== 0;
      if (target && !param && file.startsWith(join(root, 'dist')) && !names.has(target.name))
        missing.add(target.name);
    }
    ts.forEachChild(n, visit);
  };
  for (const s of symbols) for (const d of resolve(s)?.declarations ?? []) visit(d);
  return [...missing].sort();
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
    const src = (await import('../../../src/index.js')) as Record<string, unknown>;
    expect(Object.keys(src).sort()).toEqual(pinned.values);
  });

  it('names every type of its own that a public declaration uses', () => {
    expect(unnamedTypes()).toEqual([]);
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
