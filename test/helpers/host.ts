// Helpers for privileged (integration) tests: the tools they run, throwaway
// namespace directories, commands inside a namespace, the host's links, and
// skipping (with the reason printed) where root is missing. Importing this
// file without root in CI throws: unit tests import only the helpers that
// load anywhere (test/README.md lists them).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './process.js';
import { reportSkip } from './skip.js';

/** Whether this process is root (integration tests need it). */
export const isRoot = process.getuid?.() === 0;

reportSkip(
  'integration tests',
  isRoot ? undefined : 'they need root (real namespaces, mounts and links)',
);

/** Where Debian installs the CNI plugins. */
export const PLUGIN_DIR = '/usr/lib/cni';
/** The CNI plugins the integration tests run. */
export const CNI_PLUGINS = [
  'bridge',
  'host-local',
  'portmap',
  'firewall',
  'tuning',
  'ptp',
  'macvlan',
  'loopback',
  'static',
];

/** Every program the integration tests run; a test skips (with the reason) where one is missing. */
const TOOLS = [
  '/usr/bin/slirp4netns',
  '/usr/bin/pasta',
  '/usr/bin/nsenter',
  '/usr/sbin/iptables-save',
  '/usr/sbin/nft',
  ...CNI_PLUGINS.map((p) => `${PLUGIN_DIR}/${p}`),
];
const missingTools = TOOLS.filter(
  (t) => !existsSync(t) && !existsSync(t.replace('/usr/sbin/', '/sbin/')),
);
if (missingTools.length && process.env['CI']) {
  // In CI a skip would hide a missing install step in .ci/run.
  throw new Error(
    `integration tests need ${missingTools.join(', ')}: install them (scripts/install-debian-deps.sh)`,
  );
}

/** Prefix of every temp dir the tests make; the leak check looks for it. */
export const TEST_PREFIX = 'podnet-test-';

/** A short random suffix for unique names (links are limited to 15 bytes). */
export function uniq(n = 4): string {
  return randomBytes(n).toString('hex');
}

/** Runs argv inside the network namespace mounted at `path`. */
export function inNetns(path: string, argv: string[]): Promise<string> {
  return run(['nsenter', `--net=${path}`, ...argv]);
}

/** A fresh directory for namespace mounts, and its full cleanup. */
export interface NetnsDir {
  dir: string;
  /** Unmounts every namespace left in it, the directory's own bind mount, and removes it. */
  cleanup(): Promise<void>;
}

/** One interface as `ip -j addr` reports it (the fields the tests read). */
export interface IpAddr {
  ifname: string;
  flags: string[];
  mtu: number;
  /** The MAC address. */
  address: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** The interfaces of the namespace at PATH (or only DEV), as `ip -j addr` reports them. */
export async function ipAddrs(path: string, dev?: string): Promise<IpAddr[]> {
  const argv = ['ip', '-j', 'addr', 'show', ...(dev === undefined ? [] : ['dev', dev])];
  return JSON.parse(await inNetns(path, argv)) as IpAddr[];
}

/** Makes a temp directory to mount test namespaces in. */
export function tempNetnsDir(): NetnsDir {
  const dir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
  return {
    dir,
    async cleanup() {
      for (const name of readdirSync(dir)) {
        await run(['umount', '-l', join(dir, name)]).catch(() => undefined);
      }
      // podnet makes the directory a (shared) bind mount of itself.
      while (
        await run(['umount', dir]).then(
          () => true,
          () => false,
        )
      ) {}
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on 127.0.0.1 right now (for a test to publish). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** Connects to 127.0.0.1:PORT and reads to EOF. */
export function readFromLoopback(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', reject);
  });
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
