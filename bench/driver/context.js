// What the contenders of bench/driver.js share: the namespace dir, each
// contender's own network (name, bridge, /24), the host ports they publish,
// the one way every contender's namespace is made, and a process runner
// for the programs they execute (netavark, the CNI plugins).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Where every contender's namespaces are mounted (private to the throwaway host). */
export const NETNS_DIR = '/run/netns';
/** The Debian CNI plugins. */
export const PLUGIN_DIR = '/usr/lib/cni';
/** The run's own files (tmpfs of the throwaway host). */
export const WORK_DIR = '/run/podnet-bench-driver';

/** Children started and not yet exited: killed if the bench is interrupted. */
export const children = new Set();

/**
 * A network of a contender's own: a name, a bridge and 10.231.INDEX.0/24,
 * so no two contenders share a bridge, a lease or a rule. The published
 * host ports of contender INDEX are 20000 + 1000 * INDEX + (0..999).
 */
export function ownNetwork(key, index) {
  const tag = randomBytes(2).toString('hex');
  let next = 0;
  return {
    name: `pnbench-${key}-${tag}`,
    bridge: `pnb${key.slice(0, 4)}${tag}`,
    prefix: `10.231.${index}`,
    subnet: `10.231.${index}.0/24`,
    gateway: `10.231.${index}.1`,
    /** The next host port of this network's contender (a 1000-port cycle). */
    port: () => 20000 + 1000 * index + (next++ % 1000),
  };
}

/**
 * Makes one container namespace the way podnet's Networking makes its own
 * (NetworkNamespace.create in NETNS_DIR), so every contender pays the same
 * for it: the rows that are not podnet time this call inside setup and
 * ns.remove() inside teardown, as Networking does.
 */
export function createNetns(podnet, name) {
  return podnet.NetworkNamespace.create({ dir: NETNS_DIR, name });
}

/** Runs FILE ARGS with STDIN; resolves to { code, stdout, stderr }, never rejects on a non-zero exit. */
export function run(file, args, { stdin = '', env = process.env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
      });
    });
    // A program may exit without reading its stdin: its exit status says how it went.
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

/** run() that throws (with what the program printed) unless it exits 0; resolves to stdout. */
export async function runOk(what, file, args, options) {
  const r = await run(file, args, options);
  if (r.code !== 0) {
    const said = `${r.stderr.trim()} ${r.stdout.trim()}`.trim().slice(0, 400);
    throw new Error(`${what} exited ${r.code}: ${said}`);
  }
  return r.stdout;
}
