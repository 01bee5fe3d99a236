// The state store as a journal read back as untrusted input, and the
// per-container lock: no root needed.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../../src/network/index.js';
import { tryLock } from '../../../src/network/lock.js';
import type { ContainerState } from '../../../src/network/types.js';
import { processIdentity, processStatus } from '../../../src/process.js';
import { containerState } from '../../helpers/state.js';
import { tempDirs } from '../../helpers/temp.js';

const temp = tempDirs();

const NETNS_DIR = '/run/netns';
function state(over: Partial<ContainerState> = {}): ContainerState {
  return containerState({ id: 'c1', name: 'c1', ...over });
}

describe('StateStore', () => {
  it('creates a state exclusively: a second create is ERR_PODNET_CONTAINER_EXISTS', async () => {
    const store = new StateStore(temp());
    await store.create(state());
    await expect(store.create(state({ name: 'other' }))).rejects.toMatchObject({
      code: 'ERR_PODNET_CONTAINER_EXISTS',
    });
    expect((await store.read('c1'))?.name).toBe('c1');
    // No temp file is left by the refused create.
    expect(readdirSync(store.dir)).toEqual(['c1.json']);
  });

  for (const [what, bad] of [
    ['a file podnet would not have made as a namespace', { netnsPath: '/etc/passwd' }],
    ['a namespace podnet would not have named', { netnsPath: `${NETNS_DIR}/victim` }],
    [
      'a namespace path with ..',
      { netnsPath: `${NETNS_DIR}/../cni-0c0ffee0-0000-4000-8000-000000000000` },
    ],
    [
      'an engine dir podnet would not have named',
      { helpers: [{ kind: 'pasta', pid: 1, startTime: '1', dir: '/home/x/.ssh' }] },
    ],
    [
      "a rootless netns that is not its helper's",
      { netnsPath: '/proc/1/ns/net', helpers: [{ kind: 'userns', pid: 2, startTime: '1' }] },
    ],
    ['another container', { id: 'c2' }],
    ['format 1', { version: 1 }],
  ] as const) {
    it(`refuses a state naming ${what}`, async () => {
      const store = new StateStore(temp());
      writeFileSync(store.pathOf('c1'), JSON.stringify(state(bad as Partial<ContainerState>)));
      await expect(store.read('c1')).rejects.toMatchObject({ code: 'ERR_PODNET_BAD_STATE' });
      expect((await store.list()).bad).toHaveLength(1);
    });
  }

  it('refuses to read a directory others can write', async () => {
    const dir = temp();
    const store = new StateStore(dir);
    await store.create(state());
    chmodSync(dir, 0o777);
    await expect(store.read('c1')).rejects.toMatchObject({ code: 'ERR_PODNET_UNSAFE_PATH' });
    await expect(store.list()).rejects.toMatchObject({ code: 'ERR_PODNET_UNSAFE_PATH' });
  });
});

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

describe('processStatus', () => {
  it('is definite only where /proc is: alive, another start time, no such pid', () => {
    const me = processIdentity(process.pid);
    expect(processStatus(me)).toBe('alive');
    expect(processStatus({ ...me, startTime: '1' })).toBe('dead');
    expect(processStatus({ pid: 2 ** 22 + 1, startTime: '1' })).toBe('dead');
    expect(processStatus(undefined)).toBe('dead');
  });
});
