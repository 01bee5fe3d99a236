// 20 containers ADDed to one bridge network at once: distinct addresses, and
// after 20 DELs the IPAM store and the host links are as before.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { normalizeResult, parseNetworkList } from '../../../src/cni/index.js';
import {
  bridgeList,
  type CniTestEnv,
  cniTestEnv,
  leftFiles,
  makeNetns,
  skipReason,
  type TestNetns,
} from '../../helpers/cni-env.js';
import { deleteLink, hostLinks, uniq } from '../../helpers/host.js';

const N = 20;

describe.skipIf(skipReason !== undefined)('CNI in parallel', () => {
  let env: CniTestEnv;
  let namespaces: TestNetns[] = [];

  beforeEach(async () => {
    env = cniTestEnv();
    namespaces = await Promise.all(Array.from({ length: N }, () => makeNetns()));
  });
  afterEach(async () => {
    for (const ns of namespaces.splice(0)) await ns.remove();
    await deleteLink(env.bridge);
    env.cleanup();
  });

  it(`gives ${N} parallel ADDs ${N} distinct addresses and undoes them all`, async () => {
    const list = parseNetworkList(bridgeList(env, '1.0.0'));
    // The first ADD creates the bridge; the rest race on it and on IPAM.
    const linksBefore = await hostLinks();
    const attachments = namespaces.map((ns) => ({
      containerId: `ctr-${uniq()}`,
      netns: ns.path,
      ifName: 'eth0',
    }));
    const results = await Promise.all(attachments.map((a) => env.cni.add(list, a)));
    const addresses = results.map((r) => normalizeResult(r).ips[0]!.address);
    expect(new Set(addresses).size).toBe(N);
    for (const a of addresses)
      expect(a).toMatch(new RegExp(`^${env.prefix.replaceAll('.', '\\.')}\\.\\d+/24$`));
    expect(leftFiles(env.dataDir)).toHaveLength(N);
    expect(await env.cni.cachedAttachments({ network: env.network })).toHaveLength(N);

    await Promise.all(attachments.map((a) => env.cni.del(list, a)));
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await env.cni.cachedAttachments()).toEqual([]);
    const after = (await hostLinks()).filter((l) => l !== env.bridge);
    expect(after.filter((l) => !linksBefore.includes(l))).toEqual([]);
    expect(
      linksBefore.filter((l) => l !== env.bridge && !after.includes(l) && !l.startsWith('veth')),
    ).toEqual([]);
  });
});
