// The state store as a journal read back as untrusted input: no root needed.
import { chmodSync, readdirSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../../src/network/index.js';
import type { ContainerState } from '../../../src/network/types.js';
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
