// A keeper outlives its starter only once the starter has recorded it: a
// starter killed in between (after the keeper reported, before the journal
// named it) must not leave a keeper nobody can find.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NetworkNamespace } from '../../../../src/index.js';
import { isRoot, tempNetnsDir } from '../../../helpers/host.js';
import { running, until } from '../../../helpers/process.js';

// The keeper is internal: its module, from the build (its main is found next to it).
const dist = new URL('../../../../dist/rootless/keeper/keeper.js', import.meta.url).href;

/** Starts a keeper from a child process, which confirms it or not, then dies by SIGKILL. */
async function keeperOfDeadStarter(netns: string, confirm: boolean): Promise<number> {
  const script = `
    const { startKeeper } = await import(${JSON.stringify(dist)});
    const k = await startKeeper({ engine: 'none', netns: process.argv[1], options: [], ports: [] });
    if (process.argv[2] === 'confirm') k.confirm();
    process.stdout.write(String(k.pid), () => process.kill(process.pid, 'SIGKILL'));`;
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', script, netns, confirm ? 'confirm' : 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => child.once('exit', r));
  return Number(out);
}

describe.skipIf(!isRoot)('keeper confirmation', () => {
  it('a keeper whose starter died before confirming stops by itself; a confirmed one stays', async () => {
    const dir = tempNetnsDir();
    try {
      const ns = await NetworkNamespace.create({ dir: dir.dir });
      ns.close();
      const orphan = await keeperOfDeadStarter(ns.path, false);
      expect(orphan).toBeGreaterThan(0);
      await until('the unconfirmed keeper to exit', () => !running(orphan), 5000);

      const kept = await keeperOfDeadStarter(ns.path, true);
      await new Promise((r) => setTimeout(r, 500));
      expect(running(kept)).toBe(true);
      process.kill(kept, 'SIGTERM');
      await until('the confirmed keeper to stop on SIGTERM', () => !running(kept), 5000);
      await (await NetworkNamespace.open(ns.path)).remove();
    } finally {
      await dir.cleanup();
    }
  });

  it('a keeper that cannot start reports its own code, and the engine as a field', async () => {
    const { startKeeper } = (await import(
      dist
    )) as typeof import('../../../../src/rootless/keeper/keeper.js');
    const notNs = mkdtempSync(join(tmpdir(), 'podnet-test-keeper-'));
    try {
      const err = await startKeeper({
        engine: 'pasta',
        netns: notNs,
        options: [],
        ports: [],
      }).catch((e: unknown) => e);
      expect(err).toMatchObject({
        name: 'KeeperError',
        code: 'ERR_PODNET_NOT_A_NAMESPACE',
        engine: 'pasta',
      });
    } finally {
      rmSync(notNs, { recursive: true, force: true });
    }
  });
});
