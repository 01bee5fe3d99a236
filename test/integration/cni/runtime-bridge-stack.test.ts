// The default-network stack (bridge + host-local + portmap + firewall +
// tuning) on a fresh namespace, with real traffic through a mapped port. The
// only file that uses portmap and firewall: their shared chains are removed
// after each test, which must not race with another file using them.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type CniNetworkList,
  type CniResult100,
  CniRuntime,
  normalizeResult,
  parseNetworkList,
} from '../../../src/cni/index.js';
import {
  type CniTestEnv,
  cniTestEnv,
  leftFiles,
  makeNetns,
  skipReason,
  type TestNetns,
} from '../../helpers/cni-env.js';
import { deleteLink, hostLinks, ipAddrs, PLUGIN_DIR, uniq } from '../../helpers/host.js';
import { iptablesLines, removeNewChains } from '../../helpers/iptables.js';

function connectAndRead(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => {
      data += d;
    });
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(5000, () =>
      socket.destroy(new Error(`timeout connecting to ${host}:${port}`)),
    );
  });
}

// A TCP server inside the namespace, as a child process (nsenter + node).
function serveInNetns(netns: string, port: number, reply: string): Promise<ChildProcess> {
  const code = `require('net').createServer((s) => s.end(${JSON.stringify(reply)})).listen(${port}, '0.0.0.0', () => console.log('ready'))`;
  const child = spawn('nsenter', [`--net=${netns}`, process.execPath, '-e', code], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
    child.stdout!.once('data', () => resolve(child));
  });
}

describe.skipIf(skipReason !== undefined)('CNI bridge stack with real plugins', () => {
  let env: CniTestEnv;
  let ns: TestNetns;
  let iptablesBefore: string[];
  let server: ChildProcess | undefined;
  let list: CniNetworkList | undefined;

  beforeEach(async () => {
    env = cniTestEnv();
    ns = await makeNetns();
    iptablesBefore = await iptablesLines();
  });
  afterEach(async () => {
    if (server !== undefined && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGKILL');
      await exited;
    }
    server = undefined;
    // A failed test may stop between ADD and DEL: undo what it cached.
    if (list !== undefined) await env.cni.gc(list).catch(() => undefined);
    list = undefined;
    await ns.remove();
    await deleteLink(env.bridge);
    await removeNewChains(iptablesBefore);
    env.cleanup();
  });

  function stackList(): CniNetworkList {
    list = parseNetworkList({
      cniVersion: '1.0.0',
      name: env.network,
      plugins: [
        {
          type: 'bridge',
          bridge: env.bridge,
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: env.dataDir,
            routes: [{ dst: '0.0.0.0/0' }],
            ranges: [[{ subnet: `${env.prefix}.0/24`, gateway: `${env.prefix}.1` }]],
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
        { type: 'firewall' },
        { type: 'tuning' },
      ],
    });
    return list;
  }

  it('ADD configures the namespace, a mapped port reaches a server inside, DEL removes everything', async () => {
    const list = stackList();
    const containerId = `ctr-${uniq()}`;
    const gateway = `${env.prefix}.1`;
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    const attachment = {
      containerId,
      netns: ns.path,
      ifName: 'eth0',
      capabilityArgs: {
        portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp', hostIP: gateway }],
      },
    };
    const result = (await env.cni.add(list, attachment)) as CniResult100;
    expect(result.cniVersion).toBe('1.0.0');
    const norm = normalizeResult(result);
    expect(norm.ips).toHaveLength(1);
    const ip = norm.ips[0]!;
    expect(ip.gateway).toBe(gateway);
    const containerIf = norm.interfaces[ip.interface!]!;
    expect(containerIf).toMatchObject({ name: 'eth0', sandbox: ns.path });
    const hostVeth = norm.interfaces.find(
      (i) => i.sandbox === undefined && i.name !== env.bridge,
    )!.name;

    // The address is really on eth0 inside the namespace.
    const addrs = await ipAddrs(ns.path, 'eth0');
    expect(addrs[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`)).toContain(ip.address);
    expect(await hostLinks()).toContain(hostVeth);

    // The cache is libcni's file, 0600 in a 0700 dir.
    const cacheFile = join(env.cacheDir, 'results', `${env.network}-${containerId}-eth0`);
    expect(existsSync(cacheFile)).toBe(true);
    expect(await env.cni.cachedResult(list, attachment)).toEqual(result);

    // Host -> the gateway address (made by this test) -> DNAT -> the server inside.
    server = await serveInNetns(ns.path, 8080, 'hello from inside');
    expect(await connectAndRead(gateway, hostPort)).toBe('hello from inside');
    const containerIp = ip.address.split('/')[0]!;
    expect((await iptablesLines()).some((l) => l.includes(containerIp))).toBe(true);
    const ipamFiles = leftFiles(join(env.dataDir, env.network));
    expect(ipamFiles).toContain(containerIp);

    await env.cni.del(list, attachment);
    expect(await hostLinks()).not.toContain(hostVeth);
    expect(existsSync(cacheFile)).toBe(false);
    expect(leftFiles(join(env.dataDir, env.network))).toEqual([]);
    expect(
      (await iptablesLines()).filter((l) => l.includes(containerIp) || l.includes(containerId)),
    ).toEqual([]);
    // Only the shared chains portmap/firewall keep (and their static rules) remain.
    expect(await removeNewChains(iptablesBefore)).toEqual([]);
    const had = new Set(iptablesBefore);
    expect((await iptablesLines()).filter((l) => !had.has(l) && /CNI|10\.199\./.test(l))).toEqual(
      [],
    );

    // DEL again (no cache, interface gone) still succeeds.
    await env.cni.del(list, attachment);
  });

  it('loads the list from a confDir file and lists it; the embedded default only when none', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const fresh = new CniRuntime({
      pluginDirs: [PLUGIN_DIR],
      confDir: env.confDir,
      cacheDir: env.cacheDir,
    });
    expect((await fresh.listNetworks()).map((n) => n.name)).toEqual(['podman']);
    mkdirSync(env.confDir, { recursive: true });
    writeFileSync(join(env.confDir, '10-test.conflist'), stackList().bytes);
    const loaded = await fresh.loadNetwork(env.network);
    expect(loaded.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap', 'firewall', 'tuning']);
    expect((await fresh.listNetworks()).map((n) => n.name)).toEqual([env.network]);
    const a = { containerId: `ctr-${uniq()}`, netns: ns.path, ifName: 'eth1' };
    const r = normalizeResult(await fresh.add(loaded, a));
    expect(r.interfaces.some((i) => i.name === 'eth1' && i.sandbox === ns.path)).toBe(true);
    await fresh.del(loaded, a);
    expect(await fresh.cachedAttachments()).toEqual([]);
  });
});
