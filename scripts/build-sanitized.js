#!/usr/bin/env node
// Builds the addon and the helper executables (podnet-userns, podnet-exec)
// with AddressSanitizer and UBSan into a directory of its own (never
// build/Release, which everything else loads), plus a tiny probe
// addon whose only job is to commit one heap overflow and one undefined
// operation, so a run can prove the sanitizers are really watching.
//
//   node scripts/build-sanitized.js OUTDIR
//
// prints a JSON line: { addon, probe, helper, execHelper, preload } with the
// two .node paths, the user namespace helper's and the exec helper's, and the
// LD_PRELOAD value a Node process needs to load the addons (libasan must come
// first in the process: Node itself is not instrumented).
//
// The targets are derived from binding.gyp (same sources, defines and
// flags), so the builds cannot drift apart. The helpers are linked
// dynamically here: the sanitizer runtimes do not support -static. They
// carry the runtimes themselves (no preload); the exec helper until its exec
// replaces it with the command.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(import.meta.url);

const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: node scripts/build-sanitized.js OUTDIR');
  process.exit(2);
}
const out = resolve(outDir);
mkdirSync(out, { recursive: true });

const flags = [
  '-fsanitize=address,undefined',
  // Every UBSan finding is fatal, whatever UBSAN_OPTIONS says.
  '-fno-sanitize-recover=all',
  '-fno-omit-frame-pointer',
  '-g',
  '-O1',
];

const targets = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets;
const base = targets.find((t) => t.target_name === 'podnet');
const helper = targets.find((t) => t.target_name === 'podnet-userns');
const execHelper = targets.find((t) => t.target_name === 'podnet-exec');
// binding.gyp asks node for the include dir from the project's root; the
// generated file lives elsewhere, so it is resolved here.
const napiInclude = resolve(require('node-addon-api').include_dir); // relative to the cwd
const sanitized = (target, name, sources) => ({
  ...target,
  target_name: name,
  sources: sources.map((s) => join('project', s)),
  include_dirs: [napiInclude],
  cflags_cc: [...target.cflags_cc, ...flags],
  ldflags: ['-fsanitize=address,undefined'],
});
const gyp = {
  targets: [
    sanitized(base, 'podnet', base.sources),
    sanitized(base, 'sanitizer_probe', ['test/fixtures/native/sanitizer-probe.cc']),
    sanitized(helper, helper.target_name, helper.sources),
    {
      ...execHelper,
      sources: execHelper.sources.map((s) => join('project', s)),
      cflags: [...execHelper.cflags, ...flags],
      ldflags: ['-fsanitize=address,undefined'],
    },
  ],
};
// gyp wants sources below the .gyp file (it names objects after their
// paths), so the project is reached through a link.
rmSync(join(out, 'project'), { force: true });
symlinkSync(root, join(out, 'project'));
writeFileSync(join(out, 'binding.gyp'), `${JSON.stringify(gyp, null, 2)}\n`);

// The headers the main build uses: npm passes its nodedir setting to
// scripts; run by hand, the headers installed beside this Node (node-gyp
// would otherwise try to download them).
const prefix = dirname(dirname(process.execPath));
const nodedir =
  process.env.npm_config_nodedir ??
  (existsSync(join(prefix, 'include', 'node', 'node_version.h')) ? prefix : undefined);
const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
execFileSync(
  process.execPath,
  [
    nodeGyp,
    'rebuild',
    '--directory',
    out,
    '--jobs',
    String(cpus().length),
    ...(nodedir ? ['--nodedir', nodedir] : []),
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);

const runtime = (lib) =>
  execFileSync('g++', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim();
console.log(
  JSON.stringify({
    addon: join(out, 'build', 'Release', 'podnet.node'),
    probe: join(out, 'build', 'Release', 'sanitizer_probe.node'),
    helper: join(out, 'build', 'Release', helper.target_name),
    execHelper: join(out, 'build', 'Release', execHelper.target_name),
    preload: [runtime('libasan.so'), runtime('libubsan.so')].join(':'),
  }),
);
