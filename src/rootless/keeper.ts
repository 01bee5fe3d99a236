// Starting a keeper process (keeper-main.ts) and waiting for its report.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PodnetError } from '../errors.js';
import type { PortMapping } from '../ports.js';

/** A keeper failed to start its engines; `code` is the engine's error code. */
export class KeeperError extends PodnetError {
  constructor(code: string, message: string, options: { cause?: unknown } = {}) {
    super(code, `keeper process: ${message}`, options);
  }
}

/** What a started keeper runs. */
export interface KeeperInfo {
  /** The keeper's pid (it leads its own process group). */
  pid: number;
  /** The engine's pid (slirp4netns or pasta). */
  enginePid: number;
  /** The engine's private directory. */
  engineDir?: string;
  /** The pid of the UserNamespace helper holding the namespaces (`userns` jobs). */
  usernsPid?: number;
}

/** Options of {@link startKeeper}. */
export interface KeeperOptions {
  /** Which engine to run. */
  engine: 'slirp4netns' | 'pasta';
  /**
   * The namespace to attach the engine to; or 'userns': the keeper makes
   * a UserNamespace (an unprivileged user's namespaces) and holds it.
   */
  netns: string;
  /** The engine's options as podman spells them. */
  options: readonly string[];
  /** Ports to publish. */
  ports: readonly PortMapping[];
  /** How long to wait for its report (default 15 s). */
  timeoutMs?: number;
}

/**
 * Starts a detached keeper that runs slirp4netns (and the forwarder) or pasta for a
 * container and outlives this process; resolves once it reports the engines
 * running. On any failure the keeper is killed and nothing is left.
 */
export function startKeeper(opts: KeeperOptions): Promise<KeeperInfo> {
  // Compiled next to this file (dist/rootless/keeper-main.js).
  const main = fileURLToPath(new URL('./keeper-main.js', import.meta.url));
  const child = spawn(process.execPath, [main], {
    stdio: ['pipe', 'ignore', 'ignore', 'pipe'],
    detached: true,
  });
  const reportFd = child.stdio[3] as NodeJS.ReadableStream;
  child.stdin?.end(
    JSON.stringify({
      engine: opts.engine,
      netns: opts.netns,
      options: opts.options,
      ports: opts.ports,
    }),
  );
  return new Promise<KeeperInfo>((resolve, reject) => {
    let text = '';
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      reject(err);
    };
    const timer = setTimeout(
      () =>
        fail(
          new KeeperError(
            'ERR_PODNET_KEEPER_TIMEOUT',
            `no report within ${opts.timeoutMs ?? 15_000} ms`,
          ),
        ),
      opts.timeoutMs ?? 15_000,
    );
    child.on('error', (err) =>
      fail(new KeeperError('ERR_PODNET_KEEPER', err.message, { cause: err })),
    );
    reportFd.on('data', (d: Buffer) => {
      text += d.toString('utf8');
    });
    reportFd.on('end', () => {
      if (settled) return;
      let msg: {
        ok?: unknown;
        enginePid?: unknown;
        engineDir?: unknown;
        usernsPid?: unknown;
        code?: unknown;
        message?: unknown;
      };
      try {
        msg = JSON.parse(text);
      } catch {
        fail(
          new KeeperError(
            'ERR_PODNET_KEEPER',
            `exited without a report (${JSON.stringify(text.slice(0, 200))})`,
          ),
        );
        return;
      }
      const usernsPid = msg.usernsPid;
      if (
        msg.ok !== true ||
        typeof msg.enginePid !== 'number' ||
        child.pid === undefined ||
        (opts.netns === 'userns') !== (typeof usernsPid === 'number')
      ) {
        fail(
          new KeeperError(String(msg.code ?? 'ERR_PODNET_KEEPER'), String(msg.message ?? 'failed')),
        );
        return;
      }
      settled = true;
      clearTimeout(timer);
      child.unref();
      resolve({
        pid: child.pid,
        enginePid: msg.enginePid,
        ...(typeof msg.engineDir === 'string' ? { engineDir: msg.engineDir } : {}),
        ...(typeof usernsPid === 'number' ? { usernsPid } : {}),
      });
    });
  });
}
