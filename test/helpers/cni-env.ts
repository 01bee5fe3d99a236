// Shared setup for the CNI integration tests: a runtime over temp dirs,
// unique network/bridge names and subnets, throwaway namespaces (the CNI
// runtime needs nothing of a namespace but its path), and checks that
// nothing is left.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniRuntime, type CniRuntimeOptions } from '../../src/cni/index.js';
import { NetworkNamespace } from '../../src/netns/index.js';
import { CNI_PLUGINS, isRoot, PLUGIN_DIR, TEST_PREFIX, tempNetnsDir, uniq } from './host.js';
import { reportSkip } from './skip.js';

const missing = CNI_PLUGINS.filter((p) => !existsSync(join(PLUGIN_DIR, p)));

/** Why the CNI integration tests cannot run here, or undefined when they can. */
export const skipReason = reportSkip(
  'CNI integration tests',
  !isRoot
    ? 'not root'
    : missing.length > 0
      ? `CNI plugins missing from ${PLUGIN_DIR}: ${missing.join(', ')}`
      : undefined,
);

/** A runtime over its own temp confDir/cacheDir, plus an IPAM dataDir. */
export interface CniTestEnv {
  root: string;
  confDir: string;
  cacheDir: string;
  dataDir: string;
  cni: CniRuntime;
  /** A unique network name. */
  network: string;
  /** A unique bridge name (15 bytes max). */
  bridge: string;
  /** A /24 no other test uses, as `10.199.X`. */
  prefix: string;
  /** Removes the temp dirs (call last in afterEach). */
  cleanup(): void;
}

const usedThirdOctets = new Set<number>();

/** Sets up a fresh environment; the subnet is random in 10.199.0.0/16 (per process unique). */
export function cniTestEnv(options: CniRuntimeOptions = {}): CniTestEnv {
  const root = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  const confDir = join(root, 'net.d');
  const cacheDir = join(root, 'cache');
  const dataDir = join(root, 'ipam');
  let x: number;
  do x = 1 + Math.floor(Math.random() * 254);
  while (usedThirdOctets.has(x));
  usedThirdOctets.add(x);
  const id = uniq(3);
  return {
    root,
    confDir,
    cacheDir,
    dataDir,
    cni: new CniRuntime({
      pluginDirs: [PLUGIN_DIR],
      confDir,
      cacheDir,
      timeoutMs: 20_000,
      ...options,
    }),
    network: `pn-${id}`,
    bridge: `pn${id}`,
    prefix: `10.199.${x}`,
    cleanup() {
      usedThirdOctets.delete(x);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Files left in a directory tree (IPAM's lock and last_reserved_ip are bookkeeping). */
export function leftFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(
    (f) => !/(^|\/)(lock|last_reserved_ip\.\d+)$/.test(f) && statSync(join(dir, f)).isFile(),
  );
}

/** The list shared by the bridge tests: bridge + host-local, optionally more plugins. */
export function bridgeList(
  env: CniTestEnv,
  cniVersion: string,
  extra: Record<string, unknown>[] = [],
  bridgeOptions: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    cniVersion,
    name: env.network,
    plugins: [
      {
        type: 'bridge',
        bridge: env.bridge,
        isGateway: true,
        ipMasq: false,
        ...bridgeOptions,
        ipam: {
          type: 'host-local',
          dataDir: env.dataDir,
          ranges: [[{ subnet: `${env.prefix}.0/24`, gateway: `${env.prefix}.1` }]],
          routes: [{ dst: '0.0.0.0/0' }],
        },
      },
      ...extra,
    ],
  };
}

/** A namespace mounted in its own temp dir, and how to get rid of both. */
export interface TestNetns {
  path: string;
  remove(): Promise<void>;
}

/**
 * Creates a fresh network namespace in a temp dir of its own, as a runtime
 * gets it: nothing in it up, not even lo (the loopback plugin's test needs that).
 */
export async function makeNetns(): Promise<TestNetns> {
  const tmp = tempNetnsDir();
  try {
    const ns = await NetworkNamespace.create({ dir: tmp.dir, name: 'ns' });
    return {
      path: ns.path,
      async remove() {
        await ns.remove();
        await tmp.cleanup();
      },
    };
  } catch (error) {
    await tmp.cleanup();
    throw error;
  }
}
