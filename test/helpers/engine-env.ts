// The per-test environment the engine tests (pasta.test.ts and
// slirp4netns.test.ts) share: a fresh namespace and private run directory
// for each test, and afterwards every engine stopped, server closed and
// child killed, then a check that the engines removed their private
// directories (anything left in the run directory is a leak); and the echo
// server both serve.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { NetworkNamespace } from '../../src/netns/index.js';
import { type NetnsDir, TEST_PREFIX, tempNetnsDir } from './host.js';

/** What a test of the current test sees: set before it, `ns` undefined after. */
export interface EngineTestState {
  runDir: string;
  ns: NetworkNamespace | undefined;
}

/** Registers the hooks; returns what tests hand over for cleanup. */
export function engineEnvPerTest<E extends { stop(): Promise<unknown> }>(
  onState: (state: EngineTestState) => void,
): { track(engine: E): E; serve(server: net.Server): net.Server; children: ChildProcess[] } {
  let tmp: NetnsDir;
  let runDir: string;
  let ns: NetworkNamespace | undefined;
  const started: E[] = [];
  const servers: net.Server[] = [];
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    tmp = tempNetnsDir();
    runDir = mkdtempSync(join(tmpdir(), TEST_PREFIX));
    ns = await NetworkNamespace.create({ dir: tmp.dir });
    onState({ runDir, ns });
  });

  afterEach(async () => {
    for (const e of started.splice(0)) await e.stop();
    for (const srv of servers.splice(0)) await new Promise((r) => srv.close(r));
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGKILL');
        await gone;
      }
    }
    await ns?.remove();
    ns = undefined;
    onState({ runDir, ns });
    await tmp.cleanup();
    // stop() and failed starts removed their private directories: anything left is a leak.
    expect(readdirSync(runDir)).toEqual([]);
    rmSync(runDir, { recursive: true, force: true });
  });

  return {
    track: (engine) => {
      started.push(engine);
      return engine;
    },
    serve: (server) => {
      servers.push(server);
      return server;
    },
    children,
  };
}

/**
 * An echo server: whatever a client sends comes back; each client's address,
 * as the server saw it, is pushed to `peers`.
 */
export function echoServer(peers: string[] = []): net.Server {
  return net.createServer((sock) => {
    peers.push(sock.remoteAddress ?? '');
    sock.on('error', () => undefined);
    sock.pipe(sock);
  });
}
