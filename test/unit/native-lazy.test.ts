// Without a build of the addon for this machine (arm64, musl, a Node with
// another ABI), importing podnet and its pure parts still work; the first
// call that needs the addon fails with one typed line. node-gyp-build's
// PODNET_PREBUILD override, pointed at an empty directory, is such a
// machine: it then finds neither build/Release nor prebuilds/.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';

const execFileP = promisify(execFile);
const podnetBin = fileURLToPath(new URL('../../bin/podnet.js', import.meta.url));

let empty: string;
beforeEach(() => {
  empty = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
  vi.stubEnv('PODNET_PREBUILD', empty);
  vi.stubEnv('PODNET_ADDON_PATH', undefined);
  vi.resetModules(); // a fresh src/native.ts, which has loaded nothing yet
});
afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(empty, { recursive: true, force: true });
});

/** What every ERR_PODNET_NO_ADDON message must say. */
function expectNoAddonLine(message: string): void {
  expect(message).not.toContain('\n');
  expect(message).toContain(`no prebuild for linux-${process.arch} `);
  expect(message).toContain(`ABI ${process.versions.modules}, N-API ${process.versions.napi}`);
  expect(message).toContain('the package has none');
  expect(message).toMatch(/cd \/\S+ && npx node-gyp rebuild$/);
}

it('imports, and fails the first namespace call with one ERR_PODNET_NO_ADDON line', async () => {
  const podnet = await import('../../src/index.js');
  expect(podnet.isPodnetError(new Error('x'))).toBe(false);
  const dir = join(empty, 'netns');
  const err = await podnet.NetworkNamespace.create({ dir }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(podnet.isPodnetError(err)).toBe(true);
  const e = err as { code: string; message: string; cause: unknown };
  expect(e.code).toBe('ERR_PODNET_NO_ADDON');
  expectNoAddonLine(e.message);
  expect(e.cause).toBeInstanceOf(Error); // node-gyp-build's own report
  expect(existsSync(dir)).toBe(false); // nothing was made
});

it('podnet --help works; a command that needs the addon prints one line and exits 1', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, PODNET_PREBUILD: empty, NODE_DEBUG: '' };
  delete env['PODNET_ADDON_PATH'];
  const help = await execFileP(process.execPath, [podnetBin, '--help'], { env });
  expect(help.stdout).toContain('Usage:');
  expect(help.stderr).toBe('');

  const add = await execFileP(
    process.execPath,
    [podnetBin, 'netns', 'add', 'x', '--dir', join(empty, 'netns')],
    { env },
  ).then(
    () => undefined,
    (e: { code: number; stderr: string }) => e,
  );
  expect(add?.code).toBe(1);
  const lines = add?.stderr.split('\n').filter(Boolean) ?? [];
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(
    /^podnet: podnet's native addon is not available: .* \[ERR_PODNET_NO_ADDON\]$/,
  );
  expectNoAddonLine(lines[0]!.replace(/ \[ERR_PODNET_NO_ADDON\]$/, ''));
});

it("a build that is found but does not load is named, with the loader's reason", async () => {
  mkdirSync(join(empty, 'build', 'Release'), { recursive: true });
  writeFileSync(join(empty, 'build', 'Release', 'podnet.node'), 'not an ELF file');
  const { native } = await import('../../src/native.js');
  const err = (() => {
    try {
      native.closeFd(-1);
    } catch (e) {
      return e as { code?: string; message: string };
    }
  })();
  expect(err?.code).toBe('ERR_PODNET_NO_ADDON');
  expect(err?.message).not.toContain('\n');
  expect(err?.message).toContain(`the build found for linux-${process.arch} `);
  // dlopen's own reason, after the file it refused
  expect(err?.message).toContain(
    `does not load: ${join(empty, 'build', 'Release', 'podnet.node')}: `,
  );
});

it('a PODNET_ADDON_PATH that does not load says so, in one line', async () => {
  vi.stubEnv('PODNET_ADDON_PATH', join(empty, 'missing.node'));
  const { native } = await import('../../src/native.js');
  expect(() => native.POOL_TCP).toThrow(
    expect.objectContaining({
      code: 'ERR_PODNET_NO_ADDON',
      message: expect.stringMatching(
        /^cannot load the podnet addon PODNET_ADDON_PATH names: [^\n]*missing\.node/,
      ),
    }),
  );
});
