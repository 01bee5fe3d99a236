// Shared setup for the CNI integration tests: a runtime over temp dirs,
// unique network/bridge names and subnets, and checks that nothing is left.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniRuntime, type CniRuntimeOptions } from '../../../src/cni/index.js';
import { CNI_PLUGINS, isRoot, PLUGIN_DIR, run, TEST_PREFIX, uniq } from '../../helpers/host.js';

export { PLUGIN_DIR };

const missing = CNI_PLUGINS.filter((p) => !existsSync(join(PLUGIN_DIR, p)));

/** Why the CNI integration tests cannot run here, or undefined when they can. */
export const skipReason = !isRoot
  ? 'not root'
  : missing.length > 0
    ? `CNI plugins missing from ${PLUGIN_DIR}: ${missing.join(', ')}`
    : undefined;
if (skipReason !== undefined) console.warn(`skipping CNI integration tests: ${skipReason}`);

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

/** Names of links in the host namespace. */
export async function hostLinks(): Promise<string[]> {
  const links = JSON.parse(await run(['ip', '-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((l) => l.ifname);
}

/** Deletes a host link if it exists (the bridge plugin leaves its bridge). */
export async function deleteLink(name: string): Promise<void> {
  await run(['ip', 'link', 'del', name]).catch(() => undefined);
}

const TOOLS = { ipv4: 'iptables', ipv6: 'ip6tables' } as const;

/** Every iptables/ip6tables line (table-qualified), without counters. */
export async function iptablesLines(): Promise<string[]> {
  const out: string[] = [];
  for (const [family, tool] of Object.entries(TOOLS)) {
    let table = '';
    for (const line of (await run([`${tool}-save`]).catch(() => '')).split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      else if (line.startsWith('-') || line.startsWith(':')) {
        out.push(`${family} ${table} ${line.replace(/\[\d+:\d+\]/, '').trim()}`);
      }
    }
  }
  return out;
}

// iptables-save quotes arguments with spaces ("comment text").
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] === undefined ? m[2]! : m[1].replace(/\\(.)/g, '$1'),
  );
}

/**
 * Removes chains (and the rules jumping to them) that exist now but not in
 * `before`: the shared chains portmap and firewall create once and never
 * delete (CNI-HOSTPORT-*, CNI-FORWARD, CNI-ADMIN). Returns what was left
 * beyond those: per-container rules, which DEL should have removed.
 */
export async function removeNewChains(before: readonly string[]): Promise<string[]> {
  const had = new Set(before);
  const extra = (await iptablesLines()).filter((l) => !had.has(l));
  const newChains = new Set(
    extra
      .filter((l) => l.split(' ')[2]!.startsWith(':'))
      .map((l) => `${l.split(' ').slice(0, 2).join(' ')} ${l.split(' ')[2]!.slice(1)}`),
  );
  const leftovers: string[] = [];
  for (const line of extra) {
    const [family, table, ...rest] = line.split(' ');
    const rule = rest.join(' ');
    if (rule.startsWith(':')) continue;
    const args = splitRule(rule);
    const chain = args[1]!;
    const target = args[args.indexOf('-j') + 1];
    const inNew = newChains.has(`${family} ${table} ${chain}`);
    const toNew = target !== undefined && newChains.has(`${family} ${table} ${target}`);
    if (!inNew && !toNew) leftovers.push(line);
    if (!inNew) {
      const tool = TOOLS[family as keyof typeof TOOLS];
      await run([tool, '-w', '-t', table!, '-D', ...args.slice(1)]).catch(() => undefined);
    }
  }
  for (const key of newChains) {
    const [family, table, chain] = key.split(' ');
    const tool = TOOLS[family as keyof typeof TOOLS];
    await run([tool, '-w', '-t', table!, '-F', chain!]).catch(() => undefined);
  }
  for (const key of newChains) {
    const [family, table, chain] = key.split(' ');
    const tool = TOOLS[family as keyof typeof TOOLS];
    await run([tool, '-w', '-t', table!, '-X', chain!]).catch(() => undefined);
  }
  return leftovers;
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
