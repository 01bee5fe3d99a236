// Which build of the addon src/native.ts loaded: the one PODNET_ADDON_PATH
// names (the sanitizer run relies on it), else the project's own build.
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { native } from '../../src/native.js';

it('loads the addon PODNET_ADDON_PATH names, else build/Release', () => {
  expect(typeof native.decodeStats).toBe('function');
  const override = process.env['PODNET_ADDON_PATH'];
  const expected = override
    ? realpathSync(resolve(override))
    : fileURLToPath(new URL('../../build/Release/podnet.node', import.meta.url));
  const mapped = readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/)[5] ?? '')
    .filter((f) => f.endsWith('.node'));
  expect(mapped).toContain(expected);
});
