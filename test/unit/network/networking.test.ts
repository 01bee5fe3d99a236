// Which modes a rootless Networking takes, checked before anything is made:
// no root needed, nothing may be written.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Networking } from '../../../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('a rootless Networking', () => {
  it('is the default unless running as root', () => {
    expect(new Networking({ stateDir: '/nonexistent' }).rootless).toBe(process.geteuid?.() !== 0);
    expect(new Networking({ stateDir: '/nonexistent', rootless: false }).rootless).toBe(false);
  });

  for (const mode of ['bridge', { pid: 1 }, { path: '/proc/1/ns/net' }] as const) {
    it(`refuses mode ${JSON.stringify(mode)} with ERR_PODNET_NEEDS_ROOT and writes nothing`, async () => {
      const stateDir = mkdtempSync(join(tmpdir(), 'podnet-unit-'));
      dirs.push(stateDir);
      const net = new Networking({ stateDir, rootless: true });
      await expect(net.setup({ id: 'c1', name: 'c1', mode })).rejects.toMatchObject({
        code: 'ERR_PODNET_NEEDS_ROOT',
      });
      expect(readdirSync(stateDir)).toEqual([]);
    });
  }
});
