#!/usr/bin/env node
// Builds the addon with AddressSanitizer and UBSan into a directory of its
// own (never build/Release, which everything else loads), plus a tiny probe
// addon whose only job is to commit one heap overflow and one undefined
// operation, so a run can prove the sanitizers are really watching.
//
//   node scripts/build-sanitized.js OUTDIR
//
// prints a JSON line: { addon, probe, execHelper, preload } with the two
// .node paths, the exec helper's, and the LD_PRELOAD value a Node process
// needs to load the addons (libasan must come first in the process: Node
// itself is not instrumented).
//
// The target is derived from binding.gyp (same sources, defines and flags),
// so the two builds cannot drift apart.
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

const base = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets[0];
// binding.gyp asks node for the include dir from the project's root; the
// generated file lives elsewhere, so it is resolved here.
const napiInclude = resolve(require('node-addon-api').include_dir); // relative to the cwd
const sanitized = (name, sources) => ({
  ...base,
  target_name: name,
  sources: sources.map((s) => join('project', s)),
  include_dirs: [napiInclude],
  cflags_cc: [...base.cflags_cc, ...flags],
  ldflags: ['-fsanitize=address,undefined'],
});
// ns.spawn's exec helper, as binding.gyp declares it but linked
// dynamically: the sanitizer runtimes do not link statically. It carries
// them itself (no preload), until its exec replaces it with the command.
const helper = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8')).targets.find(
  (t) => t.target_name === 'podnet-exec',
);
const gyp = {
  targets: [
    sanitized('podnet', base.sources),
    sanitized('sanitizer_probe', ['test/fixtures/native/sanitizer-probe.cc']),
    {
      ...helper,
      sources: helper.sources.map((s) => join('project', s)),
      cflags: [...helper.cflags, ...flags],
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
    execHelper: join(out, 'build', 'Release', 'podnet-exec'),
    preload: [runtime('libasan.so'), runtime('libubsan.so')].join(':'),
  }),
);
