// Test helpers for privileged tests: run commands, make throwaway namespace
// directories, and skip (with the reason printed) where root is missing.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NetworkNamespace } from '../../src/index.js';

const execFileP = promisify(execFile);

/** Whether this process is root (integration tests need it). */
export const isRoot = process.getuid?.() === 0;

if (!isRoot && process.env['CI']) {
  // In CI a skipped integration test would hide a failure.
  throw new Error('integration tests must run as root in CI');
}
if (!isRoot)
  console.warn('skipping integration tests: they need root (real namespaces, mounts and links)');

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

/** Runs argv (no shell) and returns stdout; rejects with stderr in the message. */
export async function run(argv: string[], opts: { input?: string } = {}): Promise<string> {
  const [cmd, ...args] = argv;
  try {
    const child = execFileP(cmd!, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (opts.input !== undefined) child.child.stdin?.end(opts.input);
    const { stdout } = await child;
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
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

/** Creates a veth pair between two namespaces, with addresses, up, and IPv6 off (no stray packets). */
export async function vethBetween(
  a: { path: string; ifname: string; cidr: string },
  b: { path: string; ifname: string; cidr: string },
): Promise<void> {
  await run([
    'ip',
    'link',
    'add',
    a.ifname,
    'netns',
    a.path,
    'type',
    'veth',
    'peer',
    'name',
    b.ifname,
    'netns',
    b.path,
  ]);
  for (const end of [a, b]) {
    await inNetns(end.path, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    await inNetns(end.path, ['ip', 'addr', 'add', end.cidr, 'dev', end.ifname]);
    await inNetns(end.path, ['ip', 'link', 'set', end.ifname, 'up']);
  }
}

/** What a podnet command printed and how it exited. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Path of the podnet command (bin/podnet.js). */
export const podnetBin = new URL('../../bin/podnet.js', import.meta.url).pathname;

/** Runs the built podnet CLI (bin/podnet.js imports dist/: `npm run build:ts` first). */
export async function podnet(args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [podnetBin, ...args], {
      encoding: 'utf8',
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
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

/**
 * Whether PID runs and is not a zombie: an orphaned helper is reaped by
 * init, which on these machines takes up to a second.
 */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Waits until `cond()` holds, polling every 20 ms; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (let t = 0; !cond(); t += 20) {
    if (t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A new namespace in DIR with a non-loopback address of its own, as a
 * container's: a veth whose two ends both stay inside (eth0 with ADDR/24,
 * peer0), all up, so nothing is attached to the host.
 */
export async function namespaceWithAddress(dir: string, addr: string): Promise<NetworkNamespace> {
  const ns = await NetworkNamespace.create({ dir });
  try {
    await ns.addVeth('eth0', { name: 'peer0' });
    await ns.addAddress('eth0', `${addr}/24`);
    for (const link of ['lo', 'eth0', 'peer0']) await ns.setLinkUp(link);
  } catch (err) {
    await ns.remove();
    throw err;
  }
  return ns;
}
