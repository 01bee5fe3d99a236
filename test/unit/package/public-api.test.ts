// Pins the public surface of each entry point: what `import('podnet')` (and
// `podnet/metrics`, `podnet/testing`) gives at run time and what its .d.ts
// declares, against public-api.json (public-api-metrics.json,
// public-api-testing.json). A new export, or
// one that goes, fails here until the list is changed with it: the surface
// is a decision, not a side effect of `export *`. Runs on the build (npm
// test builds first), since the build is what users get.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../../..');

/** An entry point of the package: its build, its source and its pinned names. */
interface Entry {
  name: string;
  dts: string;
  js: string;
  src: string;
  pinned: { values: string[]; types: string[] };
}

const pinnedFile = (file: string): Entry['pinned'] =>
  JSON.parse(readFileSync(join(import.meta.dirname, file), 'utf8')) as Entry['pinned'];

const entries: Entry[] = [
  {
    name: 'podnet',
    dts: join(root, 'dist/index.d.ts'),
    js: join(root, 'dist/index.js'),
    src: '../../../src/index.js',
    pinned: pinnedFile('public-api.json'),
  },
  {
    name: 'podnet/metrics',
    dts: join(root, 'dist/metrics/index.d.ts'),
    js: join(root, 'dist/metrics/index.js'),
    src: '../../../src/metrics/index.js',
    pinned: pinnedFile('public-api-metrics.json'),
  },
  {
    name: 'podnet/testing',
    dts: join(root, 'dist/testing/index.d.ts'),
    js: join(root, 'dist/testing/index.js'),
    src: '../../../src/testing/index.js',
    pinned: pinnedFile('public-api-testing.json'),
  },
];
const [main] = entries as [Entry];
const pinned = main.pinned;

function publicSymbols(dts: string): { checker: ts.TypeChecker; symbols: ts.Symbol[] } {
  const program = ts.createProgram([dts], { noEmit: true });
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(dts);
  const module = file && checker.getSymbolAtLocation(file);
  if (module === undefined) throw new Error(`${dts} declares no module`);
  return { checker, symbols: checker.getExportsOfModule(module) };
}

function declaredNames(dts: string): string[] {
  return publicSymbols(dts)
    .symbols.map((s) => s.name)
    .sort();
}

// Types of podnet's own that a public declaration names but the entry point
// does not export: a user could get such a value and not name its type.
// Constructors and protected or private members are not for users. Types
// the main entry point exports count as named for the others.
function unnamedTypes(dts: string): string[] {
  const { checker, symbols } = publicSymbols(dts);
  const names = new Set([...symbols.map((s) => s.name), ...pinned.values, ...pinned.types]);
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

describe.each(entries)('the public API of $name', (entry) => {
  it('is built (run `npm run build:ts` first)', () => {
    expect(existsSync(entry.dts)).toBe(true);
  });

  it('has exactly the pinned run-time exports', async () => {
    const mod = (await import(entry.js)) as Record<string, unknown>;
    expect(Object.keys(mod).sort()).toEqual(entry.pinned.values);
  });

  it('declares exactly the pinned names in its .d.ts', () => {
    expect(declaredNames(entry.dts)).toEqual(
      [...entry.pinned.values, ...entry.pinned.types].sort(),
    );
  });

  it('the source entry point exports the same values as the build', async () => {
    const mod = (await import(entry.src)) as Record<string, unknown>;
    expect(Object.keys(mod).sort()).toEqual(entry.pinned.values);
  });

  it('names every type of its own that a public declaration uses', () => {
    expect(unnamedTypes(entry.dts)).toEqual([]);
  });
});

describe('the public API', () => {
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
