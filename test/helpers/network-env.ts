// A private world for orchestration tests: temp confDir with N bridge
// networks (unique names, bridges and subnets), temp CNI cache, IPAM,
// state and namespace dirs; and the check that nothing of it is left.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { PodnetTable } from '../../src/bridge/index.js';
import { CniRuntime } from '../../src/cni/index.js';
import { Networking } from '../../src/network/index.js';
import { leftFiles } from './cni-env.js';
import { fixture } from './fixtures.js';
import {
  deleteLink,
  hostLinks,
  type IpAddr,
  ipAddrs,
  PLUGIN_DIR,
  TEST_PREFIX,
  tempNetnsDir,
  uniq,
} from './host.js';
import { iptablesLines, removeNewChains } from './iptables.js';
import { run } from './process.js';

const FIXTURES = fixture('cni');

/** One test network. */
export interface TestNetwork {
  name: string;
  bridge: string;
  /** First three octets of its /24. */
  prefix: string;
}

/** Everything a networking test uses, and its cleanup. */
export interface NetEnv {
  root: string;
  confDir: string;
  cacheDir: string;
  dataDir: string;
  stateDir: string;
  netnsDir: string;
  networks: TestNetwork[];
  /** Options for Networking (also what a child process needs). */
  options: {
    confDir: string;
    cacheDir: string;
    stateDir: string;
    netnsDir: string;
    pluginDirs: string[];
    driver: 'cni' | 'native';
  };
  /** A Networking over this env. */
  net(): Networking;
  /** What is left of podnet's making: files, mounts, links. Empty when clean. */
  leftovers(): Promise<string[]>;
  cleanup(): Promise<void>;
}

let next = 0;

/** iptables lines portmap makes once and shares between containers. */
const SHARED_RULES = [
  / :CNI-HOSTPORT-(DNAT|SNAT|MASQ|SETMARK) /,
  / -A (PREROUTING|OUTPUT) -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT$/,
  / -A POSTROUTING .*-j CNI-HOSTPORT-MASQ$/,
  / -A CNI-HOSTPORT-(MASQ|SETMARK) /,
];

/**
 * Creates `count` bridge networks. `failAt` = [network index, plugin
 * position] puts a fake plugin into that network's list: `plugin` names it
 * (default fake-fail-add), `pluginConfig` adds to its config.
 */
export async function netEnv(
  count: number,
  opts: {
    failAt?: [number, number];
    plugin?: string;
    pluginConfig?: Record<string, unknown>;
    /** Which driver attaches the networks (default 'cni'). */
    driver?: 'cni' | 'native';
  } = {},
): Promise<NetEnv> {
  const driver = opts.driver ?? 'cni';
  const root = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  const confDir = join(root, 'net.d');
  const cacheDir = join(root, 'cache');
  const dataDir = join(root, 'ipam');
  const stateDir = join(root, 'state');
  const plugins = join(root, 'plugins');
  mkdirSync(confDir);
  mkdirSync(plugins);
  const ns = tempNetnsDir();
  const tag = uniq(2);
  const base = (process.pid * 7 + next++ * 13) % 200;
  const networks: TestNetwork[] = Array.from({ length: count }, (_, i) => ({
    name: `pn-${tag}-${i}`,
    bridge: `pn${tag}${i}`,
    prefix: `10.233.${(base + i) % 250}`,
  }));
  for (const [i, n] of networks.entries()) {
    const list: Record<string, unknown>[] = [
      {
        type: 'bridge',
        bridge: n.bridge,
        isGateway: true,
        ipMasq: false,
        capabilities: { ips: true },
        ipam: {
          type: 'host-local',
          dataDir,
          ranges: [[{ subnet: `${n.prefix}.0/24`, gateway: `${n.prefix}.1` }]],
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
      { type: 'tuning', capabilities: { mac: true } },
    ];
    if (opts.failAt?.[0] === i)
      list.splice(opts.failAt[1], 0, {
        ...opts.pluginConfig,
        type: opts.plugin ?? 'fake-fail-add',
      });
    writeFileSync(
      join(confDir, `${String(i).padStart(2, '0')}-${n.name}.conflist`),
      JSON.stringify({ cniVersion: '1.0.0', name: n.name, plugins: list }),
    );
  }
  const pluginDirs = [PLUGIN_DIR, FIXTURES];
  const iptablesBefore = await iptablesLines();
  const defaultNetwork = networks[0]?.name ?? 'podman';
  const options = {
    confDir,
    cacheDir,
    stateDir,
    netnsDir: ns.dir,
    pluginDirs,
    defaultNetwork,
    driver,
  };
  const hadTable = await podnetTableExists();
  return {
    root,
    confDir,
    cacheDir,
    dataDir,
    stateDir,
    netnsDir: ns.dir,
    networks,
    options,
    net: () =>
      new Networking({
        cni: new CniRuntime({ confDir, cacheDir, pluginDirs, timeoutMs: 20_000 }),
        stateDir,
        netnsDir: ns.dir,
        defaultNetwork,
        driver,
      }),
    async leftovers() {
      const out = [
        ...leftFiles(dataDir).map((f) => `IPAM ${f}`),
        ...leftFiles(cacheDir).map((f) => `cache ${f}`),
        ...leftFiles(stateDir).map((f) => `state ${f}`),
        ...(existsSync(ns.dir) ? readdirSync(ns.dir).map((f) => `netns ${f}`) : []),
      ];
      // Per-container iptables rules (portmap's DNAT chain and its jump); the
      // chains portmap shares between containers stay, as with podman.
      for (const line of await iptablesLines()) {
        if (!iptablesBefore.includes(line) && !SHARED_RULES.some((re) => re.test(line)))
          out.push(`iptables ${line}`);
      }
      // Host-side veths hang off our bridges; the bridges themselves stay (as with podman).
      // The native driver leaves its veths to the kernel, which destroys them
      // with their namespace, asynchronously: wait for that, a while.
      const veths = async (): Promise<string[]> => {
        const found: string[] = [];
        for (const n of networks) {
          const ports = await run(['ip', '-j', 'link', 'show', 'master', n.bridge]).catch(
            () => '[]',
          );
          for (const p of JSON.parse(ports || '[]') as { ifname: string }[])
            found.push(`veth ${p.ifname} on ${n.bridge}`);
        }
        return found;
      };
      let left = await veths();
      for (let i = 0; i < 30 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await veths();
      }
      return [...out, ...left];
    },
    async cleanup() {
      const links = await hostLinks();
      for (const n of networks) if (links.includes(n.bridge)) await deleteLink(n.bridge);
      await removeNewChains(iptablesBefore);
      // The native driver's table is shared like portmap's chains: it goes
      // if this env made it (test files run one at a time); else the
      // networks' elements go, as their bridges do.
      if (!hadTable && (await podnetTableExists()))
        await run(['nft', 'delete', 'table', 'inet', 'podnet']);
      else {
        const table = await PodnetTable.openExisting();
        try {
          for (const n of networks)
            table?.removeNetwork({
              name: n.name,
              bridge: n.bridge,
              subnets: [`${n.prefix}.0/24`],
              masquerade: true,
            });
        } finally {
          table?.close();
        }
      }
      await ns.cleanup();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Whether the host has podnet's nftables table. */
async function podnetTableExists(): Promise<boolean> {
  return run(['nft', 'list', 'table', 'inet', 'podnet']).then(
    () => true,
    () => false,
  );
}

/** Addresses (CIDR) and MAC of an interface inside a namespace, as iproute2 sees them. */
export async function ifaceInfo(
  netnsPath: string,
  ifname: string,
): Promise<{ cidrs: string[]; mac: string }> {
  const [info] = (await ipAddrs(netnsPath, ifname)) as [IpAddr];
  return {
    mac: info.address,
    cidrs: info.addr_info
      .filter((a) => !a.local.startsWith('fe80'))
      .map((a) => `${a.local}/${a.prefixlen}`),
  };
}

/**
 * Registers an afterEach that checks the current env left nothing and
 * cleans it up; `use()` makes a test's env.
 */
export function netEnvPerTest(driver: 'cni' | 'native' = 'cni'): { use: typeof netEnv } {
  let env: NetEnv | undefined;
  afterEach(async () => {
    if (!env) return;
    const current = env;
    env = undefined;
    const left = await current.leftovers();
    await current.cleanup();
    expect(left).toEqual([]);
  });
  return {
    use: async (...args) => {
      const [count, opts] = args;
      env = await netEnv(count, { driver, ...opts });
      return env;
    },
  };
}
