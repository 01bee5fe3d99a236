// Traffic between namespaces a test made inside a throwaway host, through
// test/fixtures/network/probe.mjs: servers that answer with the peer's
// address, and one-shot TCP and UDP clients. For integration tests only.
import type { ChildProcess } from 'node:child_process';
import { fixture } from './fixtures.js';
import type { CliResult } from './process.js';
import type { ThrowawayHost } from './throwaway-host.js';

const PROBE = fixture('network/probe.mjs');

/** Runs the probe inside the namespace at NETNS (inside HOST): `tcp HOST PORT`, `udp HOST PORT`. */
export function probe(host: ThrowawayHost, netns: string, args: string[]): Promise<CliResult> {
  return host.run(['nsenter', `--net=${netns}`, process.execPath, PROBE, ...args]);
}

/** Runs the probe in HOST's own namespace. */
export function probeHere(host: ThrowawayHost, args: string[]): Promise<CliResult> {
  return host.run([process.execPath, PROBE, ...args]);
}

/** Starts probe servers (TCP PORT, UDP uPORT) inside NETNS; resolves once they listen. */
export async function serve(
  host: ThrowawayHost,
  netns: string,
  ports: string[],
): Promise<ChildProcess> {
  const child = host.spawn([
    'nsenter',
    `--net=${netns}`,
    process.execPath,
    PROBE,
    'serve',
    ...ports,
  ]);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`probe server exited ${code}`)));
  });
  return child;
}

/** Kills a probe server and waits for it to be gone. */
export function stop(c: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    c.on('exit', () => resolve());
    c.kill('SIGKILL');
  });
}
