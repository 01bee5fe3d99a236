// A throwaway "host" for benchmarks that rewrite firewall rules (netavark's
// and CNI's iptables, podnet's nftables): the bench re-executes itself in a
// new network namespace and a new mount namespace with tmpfs over /run and
// /var/lib, as test/helpers/throwaway-host.ts does for the tests. Its
// iptables and nftables tables start empty, /run/netns and
// /var/lib/cni/networks are private, and when the bench's process ends
// (normally, on an error or killed) every link, rule, namespace mount and
// file it made there goes with the two namespaces: the machine's own
// ruleset, leases and namespaces are never touched. Unlike the tests' host,
// the whole bench runs inside, so podnet's library calls, netavark and the
// plugins all see the same host without nsenter.
import { execFileSync, spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';

const MARK = 'PODNET_BENCH_THROWAWAY_HOST';
const PRIVATE_DIRS = ['/run', '/var/lib'];

const ns = (pid, kind) => readlinkSync(`/proc/${pid}/ns/${kind}`);

/**
 * Makes sure the rest of SCRIPT runs in a throwaway host. Outside one, it
 * starts `unshare --net --mount --propagation private -- node SCRIPT ARGS`,
 * passes SIGINT and SIGTERM on, and exits with the child's status (never
 * returns). Inside (the child), it mounts the private tmpfs dirs, brings lo
 * up and returns. Needs root.
 */
export async function enterThrowawayHost(script) {
  if (process.env[MARK] === '1') {
    // Only the child unshare started may take this branch: the one whose
    // namespaces differ from its parent's. Anything else would mount over
    // the machine's own /run.
    for (const kind of ['net', 'mnt']) {
      if (ns(process.pid, kind) === ns(process.ppid, kind))
        throw new Error(
          `${MARK} is set but this process shares its ${kind} namespace with its parent`,
        );
    }
    for (const dir of PRIVATE_DIRS)
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', dir]);
    execFileSync('ip', ['link', 'set', 'lo', 'up']);
    return;
  }
  const child = spawn(
    'unshare',
    [
      '--net',
      '--mount',
      '--propagation',
      'private',
      '--',
      process.execPath,
      script,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, [MARK]: '1' } },
  );
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
  const [code, signal] = await new Promise((resolve) =>
    child.on('exit', (c, s) => resolve([c, s])),
  );
  process.exit(signal ? 1 : (code ?? 1));
}
