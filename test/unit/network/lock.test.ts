// The per-container lock: no root needed.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tryLock } from '../../../src/network/lock.js';
import { tempDirs } from '../../helpers/temp.js';

const temp = tempDirs();

describe('container locks', () => {
  it('exclude each other within one process, and release removes the file', () => {
    const path = join(temp(), 'c1.lock');
    const first = tryLock(path);
    expect(first).toBeDefined();
    expect(tryLock(path)).toBeUndefined();
    first!.release();
    expect(existsSync(path)).toBe(false);
    const again = tryLock(path);
    expect(again).toBeDefined();
    again!.release();
  });

  it('are released by the kernel when the holder is SIGKILLed', async () => {
    const path = join(temp(), 'c1.lock');
    const dist = new URL('../../../dist/network/lock.js', import.meta.url).href;
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { tryLock } = await import(${JSON.stringify(dist)});
         tryLock(process.argv[1]); process.stdout.write('held'); setInterval(() => {}, 1000);`,
        path,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => child.stdout.once('data', r));
    expect(tryLock(path)).toBeUndefined();
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const mine = tryLock(path);
    expect(mine).toBeDefined();
    mine!.release();
  });
});
