#!/usr/bin/env node
// Ships binding.gyp's executable targets (podnet-exec, ns.spawn's helper)
// beside the addon's prebuild: prebuildify copies only the .node file, and
// node-gyp-build looks for nothing else. Run after prebuildify (npm run
// prebuild), which leaves them built in build/Release. Each is copied,
// stripped, to prebuilds/PLATFORM-ARCH/NAME, where src/netns/spawn.ts finds
// it when there is no local build. They are linked statically, so one file
// per architecture serves glibc and musl alike.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const { targets } = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8'));
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
for (const { target_name: name, type } of targets) {
  if (type !== 'executable') continue;
  const dest = join(dir, name);
  copyFileSync(join(root, 'build', 'Release', name), dest);
  execFileSync('strip', ['--strip-all', dest]);
  chmodSync(dest, 0o755);
  console.log(`prebuilt ${dest}`);
}
