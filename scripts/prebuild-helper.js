#!/usr/bin/env node
// Ships the user namespace helper (podnet-userns) beside the addon's
// prebuild. prebuildify copies only the .node file (and shared libraries)
// out of the build/Release it has just built, so this copies the helper
// from there to prebuilds/PLATFORM-ARCH/, stripped, where podnet looks for
// it in an installed package (src/native.ts, usernsHelperPath). It is a
// static executable: one build fits glibc and musl alike, so it carries no
// libc tag.
//
//   node scripts/prebuild-helper.js     (run by `npm run prebuild`)
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const name = 'podnet-userns';
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
const dest = join(dir, name);
copyFileSync(join(root, 'build', 'Release', name), dest);
execFileSync('strip', ['--strip-all', dest]);
chmodSync(dest, 0o755);
console.log(dest);
