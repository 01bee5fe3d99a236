// Every ```ts block of README.md is a program a user could paste: it imports
// only from 'podnet', 'podnet/testing', 'podnet/metrics', node:* (and vitest, for
// the test fixture example), defines every name it
// uses, avoids `using` declarations (Node 20, the engines floor, rejects
// them), and type-checks against the package's own types with the project's
// strict settings; and it is plain JavaScript that this Node parses as an
// ES module (`node --check`), so it runs pasted into a .mjs file. A block
// that is deliberately a fragment starts with the line `// readme: fragment`
// and is only checked for imports and `using`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, expect, it } from 'vitest';
import { FRAGMENT, type ReadmeBlock, readmeBlocks } from '../../helpers/readme.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const blocks = readmeBlocks();
const work = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Where a diagnostic points, as README.md:LINE. */
function where(files: Map<string, ReadmeBlock>, d: ts.Diagnostic): string {
  const block = d.file && files.get(d.file.fileName);
  const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
  if (!block || d.start === undefined) return `${d.file?.fileName ?? ''}: ${text}`;
  const { line } = d.file!.getLineAndCharacterOfPosition(d.start);
  return `README.md:${block.line + line}: ${text}`;
}

it('README.md has ts examples, few of them fragments', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(5);
  // The second: podnet/testing's vitest fixture, which needs TypeScript's generics.
  expect(blocks.filter((b) => b.code.startsWith(FRAGMENT)).length).toBeLessThanOrEqual(2);
});

it('every ts example imports only the package and node:*, and uses no `using` declaration', () => {
  const problems: string[] = [];
  for (const block of blocks) {
    const sf = ts.createSourceFile('block.ts', block.code, ts.ScriptTarget.ES2022, true);
    const at = (node: ts.Node) =>
      block.line + sf.getLineAndCharacterOfPosition(node.getStart()).line;
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        const from = node.moduleSpecifier.text;
        if (
          // vitest: the fixture example of podnet/testing.
          !['podnet', 'podnet/testing', 'podnet/metrics', 'vitest'].includes(from) &&
          !from.startsWith('node:')
        )
          problems.push(`README.md:${at(node)}: imports '${from}'`);
      }
      if (ts.isVariableDeclarationList(node) && node.flags & ts.NodeFlags.Using)
        problems.push(`README.md:${at(node)}: a using declaration (Node 20 rejects it)`);
      ts.forEachChild(node, visit);
    };
    visit(sf);
    const syntax = (sf as unknown as { parseDiagnostics: ts.Diagnostic[] }).parseDiagnostics;
    for (const d of syntax)
      problems.push(
        `README.md:${block.line}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`,
      );
  }
  expect(problems).toEqual([]);
});

it(`every ts example is JavaScript Node ${process.versions.node} parses as a module`, () => {
  const rejected: string[] = [];
  blocks.forEach((block, i) => {
    if (block.code.startsWith(FRAGMENT)) return;
    const file = join(work, `readme-${i}.mjs`);
    writeFileSync(file, block.code);
    try {
      execFileSync(process.execPath, ['--check', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr);
      rejected.push(`README.md:${block.line}: ${stderr.split('\n').find((l) => /Error/.test(l))}`);
    }
  });
  expect(rejected).toEqual([]);
});

it("every ts example type-checks against the package's types (strict, Node 20's ES2023)", () => {
  const files = new Map<string, ReadmeBlock>();
  blocks.forEach((block, i) => {
    if (block.code.startsWith(FRAGMENT)) return;
    const file = join(work, `readme-${i}.ts`);
    writeFileSync(file, block.code);
    files.set(file, block);
  });
  // ES modules, as a user's project with top-level await would be.
  writeFileSync(join(work, 'package.json'), JSON.stringify({ type: 'module' }));

  const project = ts.readConfigFile(join(root, 'tsconfig.json'), (p) => ts.sys.readFile(p));
  const { options } = ts.parseJsonConfigFileContent(
    { compilerOptions: project.config.compilerOptions },
    ts.sys,
    root,
  );
  delete options.rootDir; // the project's root; the examples live in a temp dir
  const program = ts.createProgram([...files.keys()], {
    ...options,
    typeRoots: [join(root, 'node_modules', '@types')],
    paths: {
      podnet: [join(root, 'src', 'index.ts')],
      'podnet/testing': [join(root, 'src', 'testing', 'index.ts')],
      'podnet/metrics': [join(root, 'src', 'metrics', 'index.ts')],
    },
  });
  const errors = ts.getPreEmitDiagnostics(program).map((d) => where(files, d));
  expect(errors).toEqual([]);
}, 60_000); // a type check of the whole package: seconds, more on a busy machine
