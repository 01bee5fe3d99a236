// Plugins that misbehave (the fixtures in test/fixtures/cni), alone and at
// position k of a list of real plugins: typed errors, and nothing left behind.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CniError,
  type CniNetworkList,
  CniOutputError,
  CniRuntime,
  CniTimeoutError,
  parseNetworkList,
} from '../../../src/cni/index.js';
import {
  bridgeList,
  type CniTestEnv,
  cniTestEnv,
  leftFiles,
  makeNetns,
  skipReason,
  type TestNetns,
} from '../../helpers/cni-env.js';
import { fixture } from '../../helpers/fixtures.js';
import { deleteLink, hostLinks, inNetns, PLUGIN_DIR, uniq } from '../../helpers/host.js';
import { pidExists } from '../../helpers/process.js';

const FIXTURES = fixture('cni');

describe.skipIf(skipReason !== undefined)('CNI faults', () => {
  let env: CniTestEnv;
  let ns: TestNetns;
  let pidfile: string;

  beforeEach(async () => {
    env = cniTestEnv();
    pidfile = join(env.root, 'pids');
    env.cni = new CniRuntime({
      pluginDirs: [FIXTURES, PLUGIN_DIR],
      confDir: env.confDir,
      cacheDir: env.cacheDir,
      timeoutMs: 1000,
      env: { FIXTURE_PIDFILE: pidfile },
    });
    ns = await makeNetns();
  });
  afterEach(async () => {
    await ns.remove();
    await deleteLink(env.bridge);
    env.cleanup();
  });

  const single = (type: string): CniNetworkList =>
    parseNetworkList({ cniVersion: '1.0.0', name: env.network, plugins: [{ type }] });
  const attachment = () => ({ containerId: `ctr-${uniq()}`, netns: ns.path, ifName: 'eth0' });

  it('keeps the code, msg and details of error JSON', async () => {
    const err = await env.cni.add(single('fake-error-json'), attachment()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({
      cniCode: 11,
      msg: 'fake failure',
      details: 'from the error-json fixture',
      plugin: 'fake-error-json',
      command: 'ADD',
      network: env.network,
    });
  });

  it('reports garbage stdout as unusable output', async () => {
    const err = await env.cni.add(single('fake-garbage'), attachment()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniOutputError);
    expect((err as Error).message).toContain('this is not { json');
  });

  it('falls back to stderr when a failing plugin prints nothing', async () => {
    const err = await env.cni
      .add(single('fake-exit1-empty'), attachment())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).msg).toContain('fatal: fixture says no');
  });

  it('kills a hanging plugin and its children at the deadline, leaving no zombie', async () => {
    const started = Date.now();
    const err = await env.cni.add(single('fake-hang'), attachment()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniTimeoutError);
    // One deadline for the ADD, one for the rollback DEL (the fixture hangs on both).
    expect(Date.now() - started).toBeLessThan(5000);
    const pids = readFileSync(pidfile, 'utf8').trim().split(' ').map(Number);
    // Orphans are reaped by init, which here does it about once a second.
    for (let i = 0; i < 100 && pids.some(pidExists); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(pids.filter(pidExists)).toEqual([]);
  });

  it('caps a 64 MiB output', async () => {
    const err = await env.cni.add(single('fake-big-output'), attachment()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniOutputError);
    expect((err as Error).message).toContain('more than 4194304 bytes');
  });

  it.each([1, 2])(
    'a failure at position %i of a real list DELs everything before it',
    async (k) => {
      const plugins: Record<string, unknown>[] = [
        { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.accept_redirects': '0' } },
      ];
      plugins.splice(k - 1, 0, { type: 'fake-fail-add' });
      const list = parseNetworkList(bridgeList(env, '1.0.0', plugins));
      const linksBefore = await hostLinks();
      const a = attachment();
      const err = await env.cni.add(list, a).catch((e: unknown) => e);
      expect(err).toMatchObject({ plugin: 'fake-fail-add', cniCode: 7, command: 'ADD' });
      // The bridge plugin's veth and address are gone, and so are the lease and the cache.
      expect(
        (await hostLinks()).filter((l) => !linksBefore.includes(l) && l !== env.bridge),
      ).toEqual([]);
      expect(await inNetns(ns.path, ['ip', '-o', 'link', 'show'])).not.toContain('eth0');
      expect(leftFiles(env.dataDir)).toEqual([]);
      expect(await env.cni.cachedAttachments()).toEqual([]);
    },
  );
});
