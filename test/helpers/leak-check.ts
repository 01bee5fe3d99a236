// Runs once around the whole integration suite: records what the host holds
// before, and fails the run if anything podnet's tests make is left after:
// namespaces, nsfs and test-dir mounts, links, iptables rules, podnet's
// nftables table, IPAM leases, CNI cache files, temp dirs, helper
// processes, test users.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IPTABLES_TABLES, iptablesContent } from './iptables.js';
import { NFT_LIST_PODNET, podnetTableContent, podnetTableElements } from './nft.js';

// nft's exit code and stderr matter (no table is not a failure), so not sh().
function nftPodnet(): string[] {
  const [cmd, ...args] = NFT_LIST_PODNET;
  const r = spawnSync(cmd!, args, { encoding: 'utf8' });
  const lines = podnetTableContent({
    code: r.status ?? -1,
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
  });
  // What tests put in the table, element by element; its structure, made once, may stay.
  return lines[0]?.startsWith('(nft') ? lines : podnetTableElements(lines);
}

const sh = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return '';
  }
};

// Files only: the directories CNI makes once (networks/NAME, results) stay,
// as they do after podman, and on a fresh machine they did not exist before.
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => !/(^|\/)(lock|last_reserved_ip\.\d+)$/.test(f))
    .map((f) => join(dir, f))
    .filter((f) => {
      try {
        return !lstatSync(f).isDirectory();
      } catch {
        return false;
      }
    });
}

function helperProcesses(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    } catch {
      continue;
    }
    if (
      /slirp4netns|pasta|passt|keeper-main|podnet-userns|forwarder-main|testing\/reaper-main|rootlesskit|podnet-test-|test\/fixtures\//.test(
        cmd,
      )
    )
      out.push(`${pid} ${cmd}`);
  }
  return out;
}

function snapshot(): Record<string, string[]> {
  const mounts = sh('findmnt', ['-rn', '-o', 'TARGET,FSTYPE'])
    .split('\n')
    .filter((l) => / nsfs$/.test(l) || l.includes('podnet-test-'));
  return {
    'network namespaces in /run/netns': existsSync('/run/netns') ? readdirSync('/run/netns') : [],
    mounts,
    'links in the host namespace': sh('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
      .filter(Boolean),
    // Every table of both families, by content (counters stripped): a rule
    // left in mangle or raw is as much a leak as one in nat.
    ...Object.fromEntries(
      (['iptables', 'ip6tables'] as const).flatMap((family) =>
        IPTABLES_TABLES.map((t) => [
          `${family} ${t} rules`,
          iptablesContent(sh(`${family}-save`, ['-t', t])),
        ]),
      ),
    ),
    // podnet's own nftables table (the native driver's), by its elements:
    // a container's ports and a network's subnets and bridge, which tests
    // remove as they remove their bridges.
    'nftables elements of inet podnet': nftPodnet(),
    'CNI state in /var/lib/cni': files('/var/lib/cni'),
    'podnet state in /run/podnet': files('/run/podnet'),
    // Every temp dir podnet or its tests make starts with podnet- (benchmarks excepted).
    'temp dirs': readdirSync(tmpdir()).filter(
      (n) => n.startsWith('podnet-') && !n.startsWith('podnet-bench-'),
    ),
    'helper processes': helperProcesses(),
    // The unprivileged tests create a user of their own.
    'test users': readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => l.split(':')[0] ?? '')
      .filter((n) => n.startsWith('podnet-test-')),
  };
}

let before: Record<string, string[]>;

export function setup(): void {
  before = snapshot();
}

export async function teardown(): Promise<void> {
  // The kernel tears namespaces (and the veths in them) down asynchronously.
  let leaks: string[] = [];
  for (let i = 0; i < 20; i++) {
    const after = snapshot();
    leaks = Object.entries(after).flatMap(([what, items]) => {
      const had = new Set(before[what]);
      const extra = items.filter((x) => !had.has(x));
      return extra.length ? [`${what}: ${extra.join(', ')}`] : [];
    });
    if (leaks.length === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  // vitest reports an error thrown here but still exits 0: set the code too.
  process.exitCode = 1;
  throw new Error(`the integration tests left objects on the host:\n  ${leaks.join('\n  ')}`);
}
