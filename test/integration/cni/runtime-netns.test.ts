// CniRuntime's `netns` option with the real bridge + host-local plugins: a
// "node" namespace the plugins run in and a "pod" namespace they attach,
// as a kubelet's runtime on one node of a cluster does. The bridge and the
// host side of the veth are the node's, never the host's; the lease is in
// the test's dataDir; DEL and GC undo it from inside the node too.
import { mkdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CniNetworkList,
  CniRuntime,
  defaultExecutor,
  normalizeResult,
  parseNetworkList,
} from '../../../src/cni/index.js';
import { isPodnetError } from '../../../src/errors.js';
import type { NetworkNamespace } from '../../../src/netns/index.js';
import { tempNamespace } from '../../../src/testing/index.js';
import {
  bridgeList,
  type CniTestEnv,
  cniTestEnv,
  leftFiles,
  skipReason,
} from '../../helpers/cni-env.js';
import { deleteLink, hostLinks, ipAddrs, PLUGIN_DIR, uniq } from '../../helpers/host.js';
import { echoLine } from '../../helpers/tcp.js';

/** The names of the links in NS. */
async function linkNames(ns: NetworkNamespace): Promise<string[]> {
  return (await ns.links()).map((l) => l.name);
}

describe.skipIf(skipReason !== undefined)('CniRuntime with netns: plugins inside a node', () => {
  let env: CniTestEnv;
  let node: NetworkNamespace;
  let pod: NetworkNamespace;
  let cni: CniRuntime;
  let list: CniNetworkList;

  beforeEach(async () => {
    env = cniTestEnv();
    node = await tempNamespace();
    pod = await tempNamespace();
    cni = new CniRuntime({
      pluginDirs: [PLUGIN_DIR],
      confDir: env.confDir,
      cacheDir: env.cacheDir,
      timeoutMs: 20_000,
      netns: node.path,
    });
    list = parseNetworkList(bridgeList(env, '1.0.0'));
  });
  afterEach(async () => {
    // A test that stopped between ADD and DEL: its attachments go with the
    // node (whose removal takes the bridge and veths along).
    await cni.gc(list).catch(() => undefined);
    await pod.remove();
    await node.remove();
    // Only a plugin run in the wrong place would have made it here.
    await deleteLink(env.bridge);
    env.cleanup();
  });

  const attachment = (ns: NetworkNamespace = pod) => ({
    containerId: `ctr-${uniq()}`,
    netns: ns.path,
    ifName: 'eth0',
  });

  it('ADD makes the bridge in the node, not the host; the pod reaches its gateway; DEL undoes it', async () => {
    const a = attachment();
    const r = normalizeResult(await cni.add(list, a));
    const ip = r.ips[0]!;
    const gateway = `${env.prefix}.1`;
    expect(ip.gateway).toBe(gateway);
    const hostVeth = r.interfaces.find((i) => i.sandbox === undefined && i.name !== env.bridge)!;

    // The bridge and the host end of the veth are in the node, not here.
    expect(await linkNames(node)).toEqual(expect.arrayContaining([env.bridge, hostVeth.name]));
    const host = await hostLinks();
    expect(host).not.toContain(env.bridge);
    expect(host).not.toContain(hostVeth.name);
    // The gateway address is the node's bridge's (isGateway).
    const bridge = (await ipAddrs(node.path, env.bridge))[0]!;
    expect(bridge.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toContain(`${gateway}/24`);

    const eth0 = (await ipAddrs(pod.path, 'eth0'))[0]!;
    expect(eth0.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toContain(ip.address);
    expect((await echoLine(pod, node, gateway, 'across the bridge\n')).echo).toBe(
      'across the bridge\n',
    );

    const leased = ip.address.split('/')[0]!;
    expect(leftFiles(env.dataDir)).toEqual([join(env.network, leased)]);

    await cni.del(list, a);
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await linkNames(node)).not.toContain(hostVeth.name);
    expect(await linkNames(pod)).toEqual(['lo']);
    expect(await cni.cachedAttachments()).toEqual([]);
  });

  it('every plugin process of ADD, CHECK, DEL and VERSION runs in the node namespace', async () => {
    // What each plugin process is in, read while it waits for its config
    // (onSpawn comes once podnet-exec has exec'd the plugin in place).
    const seen: { command: string; netns: string }[] = [];
    const recording = new CniRuntime({
      pluginDirs: [PLUGIN_DIR],
      confDir: env.confDir,
      cacheDir: env.cacheDir,
      netns: node.path,
      executor: (path, stdin, environment, options) =>
        defaultExecutor(path, stdin, environment, {
          ...options,
          onSpawn: async (pid) => {
            seen.push({
              command: environment['CNI_COMMAND']!,
              netns: readlinkSync(`/proc/${pid}/ns/net`),
            });
            await options.onSpawn?.(pid);
          },
        }),
    });
    const a = attachment();
    await recording.add(list, a);
    await recording.check(list, a);
    await recording.del(list, a);
    await recording.version('bridge');
    const nodeNs = `net:[${statSync(node.path).ino}]`;
    expect(seen.map((s) => s.command)).toEqual(['ADD', 'CHECK', 'DEL', 'VERSION']);
    expect(seen.map((s) => s.netns)).toEqual(seen.map(() => nodeNs));
    expect(nodeNs).not.toBe(readlinkSync('/proc/self/ns/net'));
  });

  it('GC DELs what the cache holds beyond the valid list: leases and veths, in the node', async () => {
    const other = await tempNamespace();
    try {
      const keep = attachment();
      const drop = attachment(other);
      const kept = normalizeResult(await cni.add(list, keep));
      const dropped = normalizeResult(await cni.add(list, drop));
      const veth = (r: typeof kept) =>
        r.interfaces.find((i) => i.sandbox === undefined && i.name !== env.bridge)!.name;
      const lease = (r: typeof kept) => join(env.network, r.ips[0]!.address.split('/')[0]!);
      expect(leftFiles(env.dataDir).sort()).toEqual([lease(kept), lease(dropped)].sort());

      await cni.gc(list, { validAttachments: [keep] });
      expect(leftFiles(env.dataDir)).toEqual([lease(kept)]);
      expect(await linkNames(node)).toContain(veth(kept));
      expect(await linkNames(node)).not.toContain(veth(dropped));
      expect(await linkNames(other)).toEqual(['lo']);
      expect((await cni.cachedAttachments()).map((x) => x.containerId)).toEqual([keep.containerId]);

      await cni.gc(list, { validAttachments: [] });
      expect(leftFiles(env.dataDir)).toEqual([]);
      expect(await linkNames(node)).not.toContain(veth(kept));
      expect(await linkNames(pod)).toEqual(['lo']);
      expect(await cni.cachedAttachments()).toEqual([]);
    } finally {
      await other.remove();
    }
  });

  it('a netns that is not a network namespace: one typed line, nothing made anywhere', async () => {
    const plain = join(env.root, 'not-a-namespace');
    writeFileSync(plain, '');
    const cases: [string, string][] = [
      [plain, 'ERR_PODNET_NOT_A_NAMESPACE'],
      ['/proc/self/ns/uts', 'ERR_PODNET_NOT_A_NAMESPACE'],
      [join(env.root, 'missing'), 'ENOENT'],
    ];
    for (const [path, code] of cases) {
      const bad = new CniRuntime({
        pluginDirs: [PLUGIN_DIR],
        confDir: env.confDir,
        cacheDir: env.cacheDir,
        netns: path,
      });
      let started = 0;
      const err = await bad
        .add(list, attachment(), { onPlugin: () => void started++ })
        .catch((e: unknown) => e);
      expect(isPodnetError(err) && err.code).toBe(code);
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).not.toContain('\n');
      expect(started).toBe(0);
      await expect(bad.del(list, attachment())).rejects.toMatchObject({ code });
      await expect(bad.gc(list)).rejects.toMatchObject({ code });
      await expect(bad.version('bridge')).rejects.toMatchObject({ code });
    }
    expect(await hostLinks()).not.toContain(env.bridge);
    expect(await linkNames(node)).toEqual(['lo']);
    expect(await linkNames(pod)).toEqual(['lo']);
    expect(leftFiles(env.dataDir)).toEqual([]);
    expect(await cni.cachedAttachments()).toEqual([]);
  });

  it('a plugin that cannot be started in the node fails as it does outside one', async () => {
    // Real faults of the exec: a directory where the binary should be
    // (EACCES for both, Node's spawn and podnet-exec), and a file with no
    // executable format (ENOEXEC: podnet-exec never hands it to /bin/sh).
    const bin = join(env.root, 'bin');
    mkdirSync(join(bin, 'dir-plugin'), { recursive: true });
    writeFileSync(join(bin, 'text-plugin'), 'not a program\n', { mode: 0o755 });
    const single = (type: string) =>
      parseNetworkList({ cniVersion: '1.0.0', name: env.network, plugins: [{ type }] });
    const runtime = (netns?: string) =>
      new CniRuntime({
        pluginDirs: [bin],
        confDir: env.confDir,
        cacheDir: env.cacheDir,
        ...(netns === undefined ? {} : { netns }),
      });
    const failure = async (rt: CniRuntime, type: string) => {
      let started = 0;
      const err = await rt
        .add(single(type), attachment(), { onPlugin: () => void started++ })
        .catch((e: unknown) => e);
      expect(started).toBe(0);
      const e = err as Error & { code: string; syscall: string; path: string };
      return { name: e.name, code: e.code, syscall: e.syscall, path: e.path, message: e.message };
    };
    const outside = await failure(runtime(), 'dir-plugin');
    expect(outside).toMatchObject({ name: 'PodnetSystemError', code: 'EACCES', syscall: 'spawn' });
    expect(await failure(runtime(node.path), 'dir-plugin')).toEqual(outside);
    expect(await failure(runtime(node.path), 'text-plugin')).toEqual({
      name: 'PodnetSystemError',
      code: 'ENOEXEC',
      syscall: 'spawn',
      path: join(bin, 'text-plugin'),
      message: `executing CNI plugin 'text-plugin': ENOEXEC: spawn '${join(bin, 'text-plugin')}'`,
    });
    expect(await cni.cachedAttachments()).toEqual([]);
  });
});
