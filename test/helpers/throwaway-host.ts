// A throwaway "host" for tests that must watch everything podnet does to a
// host: a new network namespace AND a new mount namespace (as podman's and
// netavark's own tests use), with tmpfs over /run and /var/lib inside, so
// podnet's default paths (/run/netns, /run/podnet, /var/lib/cni) are empty
// and private, its iptables tables are fresh, and nothing it makes there can
// reach the machine's own rules or another agent's concurrent run. Dropping
// the host (or the test runner dying) takes every link, rule, mount and
// file in it along. Processes are not isolated (no pid namespace): they are
// recognised by being in the host's mount or network namespace.
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { IPTABLES_TABLES, iptablesContent } from './iptables.js';
import { NFT_LIST_PODNET, podnetTableContent } from './nft.js';
import { type CliResult, podnetBin, running, runResult, until } from './process.js';

/** What a host holds, section by section, each a sorted list of lines. */
export type HostSnapshot = Record<string, string[]>;

/** Directories the host covers with a tmpfs of its own (their subdirs need no mountpoint on the real host). */
const PRIVATE_DIRS = ['/run', '/var/lib'];

/** A throwaway host; see the file comment. */
export interface ThrowawayHost {
  /** Pid of the process holding the namespaces (nsenter's target). */
  readonly pid: number;
  /** A path inside the host as this process can read it (through /proc/PID/root). */
  path(p: string): string;
  /**
   * Starts argv inside the host (nsenter execs it: the child's pid is
   * argv's own), its stdin, stdout and stderr pipes.
   */
  spawn(argv: string[], env?: Record<string, string>): ChildProcess;
  /** Runs argv inside the host to its end; never rejects on a non-zero exit. */
  run(argv: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Runs `node bin/podnet.js ARGS` inside the host. */
  podnet(args: string[], env?: Record<string, string>): Promise<CliResult>;
  /** Starts `node bin/podnet.js ARGS` inside the host. */
  spawnPodnet(args: string[], env?: Record<string, string>): ChildProcess;
  /** Every process in the host's namespaces but the holder, as `PID CMDLINE`. */
  processes(): string[];
  /** What the host holds now (see {@link diffSnapshots}). */
  snapshot(): Promise<HostSnapshot>;
  /** Kills every process left in the host, then the holder: the namespaces go with them. */
  close(): Promise<void>;
}

function nsLink(pid: number | string, kind: 'mnt' | 'net'): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/** Every file under DIR (recursively), as paths relative to ROOT. */
function filesUnder(root: string, dir: string): string[] {
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(join(root, dir), { withFileTypes: true, recursive: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath, e.name).slice(root.length));
}

/**
 * Makes a throwaway host. The holder is `cat` reading a pipe from this
 * process: if the test runner dies, cat sees EOF and exits, and the
 * namespaces go as soon as no process is left in them.
 */
export async function throwawayHost(): Promise<ThrowawayHost> {
  const holder = spawn('unshare', ['--net', '--mount', '--propagation', 'private', '--', 'cat'], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const pid = holder.pid;
  if (pid === undefined) throw new Error('unshare did not start');
  const ownMnt = nsLink(process.pid, 'mnt');
  // unshare execs cat once both namespaces exist.
  await until(
    'the throwaway host to unshare',
    () => cmdline(String(pid)).startsWith('cat') && nsLink(pid, 'mnt') !== ownMnt,
  );
  const mnt = nsLink(pid, 'mnt')!;
  const netLink = nsLink(pid, 'net')!;
  const enter = (argv: string[]): string[] => [
    'nsenter',
    `--target=${pid}`,
    '--net',
    '--mount',
    '--',
    ...argv,
  ];
  const root = `/proc/${pid}/root`;

  const processes = (): string[] => {
    const out: string[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === pid || !running(Number(p))) continue;
      if (nsLink(p, 'mnt') === mnt || nsLink(p, 'net') === netLink) out.push(`${p} ${cmdline(p)}`);
    }
    return out;
  };

  const host: ThrowawayHost = {
    pid,
    path: (p) => join(root, p),
    spawn: (argv, env) =>
      spawn(enter(argv)[0]!, enter(argv).slice(1), {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...env },
      }),
    run: (argv, env) => runResult(enter(argv), { env }),
    podnet: (args, env) => runResult(enter([process.execPath, podnetBin, ...args]), { env }),
    spawnPodnet: (args, env) => host.spawn([process.execPath, podnetBin, ...args], env),
    processes,
    async snapshot() {
      // Processes first: the commands below run inside the host themselves.
      const procs = processes().map((l) => l.replace(/^\d+ /, ''));
      const mounts = readFileSync(`/proc/${pid}/mountinfo`, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const f = l.split(' ');
          return `${f[4]} ${f[f.indexOf('-') + 1]}`;
        });
      const [links, addrs, podnetTable, ...tables] = await Promise.all([
        host.run(['ip', '-j', '-d', 'link', 'show']),
        host.run(['ip', '-j', 'addr', 'show']),
        host.run(NFT_LIST_PODNET),
        ...IPTABLES_TABLES.flatMap((t) => [
          host.run(['iptables-save', '-t', t]),
          host.run(['ip6tables-save', '-t', t]),
        ]),
      ]);
      const linkList = JSON.parse(links.stdout || '[]') as {
        ifname: string;
        master?: string;
        linkinfo?: { info_kind?: string };
      }[];
      const addrList = JSON.parse(addrs.stdout || '[]') as {
        ifname: string;
        addr_info: { local: string; prefixlen: number; scope: string }[];
      }[];
      const snap: HostSnapshot = {
        processes: procs,
        mounts,
        'namespaces in /run/netns': filesUnder(root, '/run/netns'),
        links: linkList.map(
          (l) => `${l.ifname} ${l.linkinfo?.info_kind ?? 'device'} master=${l.master ?? '-'}`,
        ),
        // Link-local IPv6 addresses come and go with carrier: not podnet's.
        addresses: addrList.flatMap((l) =>
          l.addr_info
            .filter((a) => a.scope !== 'link')
            .map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`),
        ),
      };
      IPTABLES_TABLES.forEach((t, i) => {
        for (const [family, res] of [
          ['iptables', tables[2 * i]!],
          ['ip6tables', tables[2 * i + 1]!],
        ] as const) {
          snap[`${family} ${t}`] =
            res.code === 0
              ? iptablesContent(res.stdout)
              : [`(${family}-save failed: ${res.stderr.trim()})`];
        }
      });
      // podnet's own nftables table, by content: its structure, once made,
      // stays (like the bridge a CNI network leaves); its elements must not.
      snap['nftables table inet podnet'] = podnetTableContent(podnetTable!);
      // host-local's lock and last_reserved_ip are its bookkeeping, not leases.
      const files = PRIVATE_DIRS.flatMap((d) => filesUnder(root, d)).filter(
        (f) => !/^\/var\/lib\/cni\/networks\/.*\/(lock|last_reserved_ip\.\d+)$/.test(f),
      );
      const sections: [string, RegExp][] = [
        ['podnet state (/run/podnet)', /^\/run\/podnet\//],
        ['host-local leases (/var/lib/cni/networks)', /^\/var\/lib\/cni\/networks\//],
        ['CNI cache (/var/lib/cni/results)', /^\/var\/lib\/cni\/results\//],
      ];
      for (const [name, re] of sections) snap[name] = files.filter((f) => re.test(f));
      snap['other files under /run and /var/lib'] = files.filter(
        (f) => !f.startsWith('/run/netns/') && !sections.some(([, re]) => re.test(f)),
      );
      for (const k of Object.keys(snap)) snap[k]!.sort();
      return snap;
    },
    async close() {
      for (let i = 0; i < 50; i++) {
        const left = processes();
        if (left.length === 0) break;
        for (const l of left) {
          try {
            process.kill(Number(l.split(' ')[0]), 'SIGKILL');
          } catch {
            // Gone meanwhile.
          }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      holder.stdin?.end();
      holder.kill('SIGKILL');
      await until('the throwaway host to end', () => !running(pid), 5000).catch(() => undefined);
    },
  };

  try {
    for (const dir of PRIVATE_DIRS) {
      const r = await host.run(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', dir]);
      if (r.code !== 0) throw new Error(`mounting a tmpfs on ${dir} in the host: ${r.stderr}`);
    }
    const lo = await host.run(['ip', 'link', 'set', 'lo', 'up']);
    if (lo.code !== 0) throw new Error(`lo up in the host: ${lo.stderr}`);
  } catch (err) {
    await host.close();
    throw err;
  }
  return host;
}

/**
 * What differs between two snapshots, one line per item: `section: + item`
 * for what AFTER has and BEFORE had not, `- item` the other way. Empty when equal.
 */
export function diffSnapshots(before: HostSnapshot, after: HostSnapshot): string[] {
  const out: string[] = [];
  for (const section of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = new Set(before[section] ?? []);
    const a = new Set(after[section] ?? []);
    for (const x of a) if (!b.has(x)) out.push(`${section}: + ${x}`);
    for (const x of b) if (!a.has(x)) out.push(`${section}: - ${x}`);
  }
  return out;
}

/**
 * The diff between BEFORE and the host, polled for up to MS while it is not
 * empty: the kernel removes a deleted namespace's veths asynchronously.
 */
export async function settledDiff(
  host: ThrowawayHost,
  before: HostSnapshot,
  ms = 1500,
): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const diff = diffSnapshots(before, await host.snapshot());
    if (diff.length === 0 || Date.now() > deadline) return diff;
    await new Promise((r) => setTimeout(r, 100));
  }
}
