// The other real plugins (ptp, macvlan, loopback, static IPAM), the same
// network at three spec versions, and CHECK/GC/STATUS/VERSION against real
// plugins.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CniError,
  type CniNetworkList,
  CniRuntime,
  type NormalizedCniResult,
  normalizeResult,
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
import { deleteLink, hostLinks, inNetns, ipAddrs, PLUGIN_DIR, uniq } from '../../helpers/host.js';

describe.skipIf(skipReason !== undefined)('CNI with real plugins', () => {
  let env: CniTestEnv;
  let ns: TestNetns;
  const extra: TestNetns[] = [];

  beforeEach(async () => {
    env = cniTestEnv();
    ns = await makeNetns();
  });
  afterEach(async () => {
    for (const n of [ns, ...extra.splice(0)]) await n.remove();
    await deleteLink(env.bridge);
    env.cleanup();
  });

  const attach = (ifName = 'eth0') => ({ containerId: `ctr-${uniq()}`, netns: ns.path, ifName });

  it('ptp: ADD puts the address inside, DEL removes the host veth and the lease', async () => {
    const list = parseNetworkList({
      cniVersion: '1.0.0',
      name: env.network,
      plugins: [
        {
          type: 'ptp',
          ipMasq: false,
          ipam: { type: 'host-local', dataDir: env.dataDir, subnet: `${env.prefix}.0/24` },
        },
      ],
    });
    const a = attach();
    const r = normalizeResult(await env.cni.add(list, a));
    const hostVeth = r.interfaces.find((i) => i.sandbox === undefined)!.name;
    expect(await hostLinks()).toContain(hostVeth);
    const eth0 = (await ipAddrs(ns.path)).find((l) => l.ifname === 'eth0')!;
    expect(eth0.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toContain(r.ips[0]!.address);
    await env.cni.del(list, a);
    expect(await hostLinks()).not.toContain(hostVeth);
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await env.cni.cachedAttachments()).toEqual([]);
  });

  it('macvlan on a parent link inside a test namespace', async () => {
    // Debian's macvlan (1.1.1) finds its master in the namespace it runs in,
    // so the plugins run in a "host" namespace of the test's own (netns).
    const host = await makeNetns();
    extra.push(host);
    // This kernel has no dummy driver: one end of a veth pair is the parent.
    await inNetns(host.path, [
      'ip',
      'link',
      'add',
      'dummy0',
      'type',
      'veth',
      'peer',
      'name',
      'dummy1',
    ]);
    await inNetns(host.path, ['ip', 'link', 'set', 'dummy0', 'up']);
    const cni = new CniRuntime({
      pluginDirs: [PLUGIN_DIR],
      cacheDir: env.cacheDir,
      confDir: env.confDir,
      netns: host.path,
    });
    const list = parseNetworkList({
      cniVersion: '1.0.0',
      name: env.network,
      plugins: [
        {
          type: 'macvlan',
          master: 'dummy0',
          mode: 'bridge',
          ipam: { type: 'host-local', dataDir: env.dataDir, subnet: `${env.prefix}.0/24` },
        },
      ],
    });
    const a = attach('mv0');
    const r = normalizeResult(await cni.add(list, a));
    const mv = (await ipAddrs(ns.path)).find((l) => l.ifname === 'mv0')!;
    expect(mv.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toContain(r.ips[0]!.address);
    await cni.del(list, a);
    expect((await ipAddrs(ns.path)).map((l) => l.ifname)).toEqual(['lo']);
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await cni.cachedAttachments()).toEqual([]);
  });

  it('loopback: ADD brings lo up, DEL brings it down', async () => {
    const list = parseNetworkList({
      cniVersion: '1.0.0',
      name: env.network,
      plugins: [{ type: 'loopback' }],
    });
    const a = attach('lo');
    await env.cni.add(list, a);
    expect((await ipAddrs(ns.path)).find((l) => l.ifname === 'lo')!.flags).toContain('UP');
    await env.cni.del(list, a);
    expect((await ipAddrs(ns.path)).find((l) => l.ifname === 'lo')!.flags).not.toContain('UP');
    expect(await env.cni.cachedAttachments()).toEqual([]);
  });

  it('the same network at 0.3.1, 0.4.0 and 1.0.0 (bridge + static IPAM) gives the same normalised result', async () => {
    const normalised: NormalizedCniResult[] = [];
    const containerId = `ctr-${uniq()}`;
    for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
      const raw = bridgeList(env, version, [{ type: 'tuning', capabilities: { mac: true } }]);
      const bridge = (raw['plugins'] as Record<string, unknown>[])[0]!;
      bridge['ipam'] = {
        type: 'static',
        addresses: [{ address: `${env.prefix}.7/24`, gateway: `${env.prefix}.1` }],
        routes: [{ dst: '0.0.0.0/0' }],
        dns: { nameservers: [`${env.prefix}.1`] },
      };
      const list = parseNetworkList(raw);
      const a = {
        containerId,
        netns: ns.path,
        ifName: 'eth0',
        capabilityArgs: { mac: '02:00:00:00:00:07' },
      };
      const result = await env.cni.add(list, a);
      expect(result.cniVersion).toBe(version);
      const n = normalizeResult(result);
      // The host veth's name and MAC are random: compare everything else.
      const hostIndex = n.interfaces.findIndex(
        (i) => i.sandbox === undefined && i.name !== env.bridge,
      );
      n.interfaces[hostIndex] = { name: 'HOST-VETH' };
      const bridgeIf = n.interfaces.find((i) => i.name === env.bridge)!;
      delete bridgeIf.mac;
      normalised.push(n);
      await env.cni.del(list, a);
    }
    expect(normalised[0]!.ips).toEqual([
      { address: `${env.prefix}.7/24`, gateway: `${env.prefix}.1`, interface: 2 },
    ]);
    expect(normalised[0]!.interfaces[2]).toEqual({
      name: 'eth0',
      mac: '02:00:00:00:00:07',
      sandbox: ns.path,
    });
    expect(normalised[1]).toEqual(normalised[0]);
    expect(normalised[2]).toEqual(normalised[0]);
    expect(await env.cni.cachedAttachments()).toEqual([]);
  });

  it('DEL succeeds after the namespace is gone, and frees the lease and the cache', async () => {
    const list = parseNetworkList(bridgeList(env, '1.0.0', [{ type: 'tuning' }]));
    const gone = await makeNetns();
    const a = { containerId: `ctr-${uniq()}`, netns: gone.path, ifName: 'eth0' };
    await env.cni.add(list, a);
    await gone.remove();
    await env.cni.del(list, a);
    await env.cni.del(list, { ...a, netns: '' });
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await env.cni.cachedAttachments()).toEqual([]);
  });

  it('CHECK passes on a live attachment and fails once it is broken', async () => {
    const list = parseNetworkList(bridgeList(env, '1.0.0', [{ type: 'tuning' }]));
    const a = attach();
    await env.cni.add(list, a);
    await env.cni.check(list, a);
    await inNetns(ns.path, ['ip', 'link', 'del', 'eth0']);
    await expect(env.cni.check(list, a)).rejects.toMatchObject({
      plugin: 'bridge',
      command: 'CHECK',
    });
    await env.cni.del(list, a);
  });

  it('GC DELs cached attachments that are no longer valid and keeps the valid ones', async () => {
    const list = parseNetworkList(bridgeList(env, '1.0.0'));
    const second = await makeNetns();
    extra.push(second);
    const keep = attach();
    const stale = { containerId: `ctr-${uniq()}`, netns: second.path, ifName: 'eth0' };
    await env.cni.add(list, keep);
    await env.cni.add(list, stale);
    expect(leftFiles(env.dataDir)).toHaveLength(2);
    await env.cni.gc(list, { validAttachments: [keep] });
    expect((await env.cni.cachedAttachments()).map((x) => x.containerId)).toEqual([
      keep.containerId,
    ]);
    expect(leftFiles(env.dataDir)).toHaveLength(1);
    expect((await ipAddrs(second.path)).map((l) => l.ifname)).toEqual(['lo']);
    await env.cni.gc(list);
    expect(await env.cni.cachedAttachments()).toEqual([]);
    expect(leftFiles(env.dataDir)).toEqual([]);
  });

  it('STATUS and GC on a 1.1.0 list reach the plugins, which (1.1.1) predate them', async () => {
    const list: CniNetworkList = parseNetworkList(bridgeList(env, '1.1.0'));
    const err = await env.cni.status(list).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({ plugin: 'bridge', command: 'STATUS' });
    await expect(env.cni.gc(list)).rejects.toMatchObject({ code: 'ERR_PODNET_CNI_GC' });
    await env.cni.status(parseNetworkList(bridgeList(env, '1.0.0')));
  });

  it('VERSION asks a plugin what it supports', async () => {
    const info = await env.cni.version('bridge');
    expect(info.supportedVersions).toEqual(expect.arrayContaining(['0.3.1', '0.4.0', '1.0.0']));
  });
});
