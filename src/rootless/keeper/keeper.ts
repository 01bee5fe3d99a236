// Starting a keeper process (keeper-main.ts) and waiting for its report;
// the job and the report are declared in job.ts.
import { fileURLToPath } from 'node:url';
import type { PodnetErrorCode, SystemErrorCode } from '../../error-codes.js';
import { PodnetError } from '../../errors.js';
import type { PortMapping } from '../../ports.js';
import { spawnDetached } from '../detached.js';
import type { EngineName } from '../errors.js';
import { type KeeperJob, parseKeeperReport } from './job.js';

/**
 * A keeper failed to start its engines; `code` is the engine's error code
 * (ERR_PODNET_ENGINE_START, ...) and `engine` the engine it was to run.
 */
export class KeeperError extends PodnetError {
  /** The engine the keeper was to run (none for a keeper that runs none). */
  readonly engine?: EngineName;

  constructor(
    code: PodnetErrorCode | SystemErrorCode,
    message: string,
    options: { cause?: unknown; engine?: EngineName | undefined } = {},
  ) {
    super(code, `keeper process: ${message}`, { cause: options.cause });
    if (options.engine !== undefined) this.engine = options.engine;
  }
}

/** What a started keeper runs. */
export interface KeeperInfo {
  /** The keeper's pid (it leads its own process group). */
  pid: number;
  /** The engine's pid (slirp4netns or pasta; none for engine 'none'). */
  enginePid?: number;
  /** The engine's private directory. */
  engineDir?: string;
  /** The pid of the UserNamespace helper holding the namespaces (`userns` jobs). */
  usernsPid?: number;
  /**
   * Call once the keeper is recorded (in the container's journal): until
   * then, the keeper stops everything and exits if this process dies.
   */
  confirm(): void;
}

/** Options of {@link startKeeper}. */
export interface KeeperOptions {
  /**
   * Which engine to run; 'none' runs none and only holds a 'userns'
   * namespace (an unprivileged user's network of mode 'none').
   */
  engine: 'slirp4netns' | 'pasta' | 'none';
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
 * container and outlives this process once confirmed; resolves once it
 * reports the engines running. On any failure the keeper is killed and
 * nothing is left.
 */
export async function startKeeper(opts: KeeperOptions): Promise<KeeperInfo> {
  const { pid, report, confirm } = await spawnDetached({
    // Compiled next to this file (dist/rootless/keeper/keeper-main.js).
    main: fileURLToPath(new URL('./keeper-main.js', import.meta.url)),
    job: {
      engine: opts.engine,
      netns: opts.netns,
      options: [...opts.options],
      ports: [...opts.ports],
    } satisfies KeeperJob,
    timeoutMs: opts.timeoutMs ?? 15_000,
    code: 'ERR_PODNET_KEEPER',
    timeoutCode: 'ERR_PODNET_KEEPER_TIMEOUT',
    error: (code, message, cause) =>
      new KeeperError(code, message, {
        cause,
        engine: opts.engine === 'none' ? undefined : opts.engine,
      }),
    accept: (msg) => {
      const report = parseKeeperReport(msg);
      if ((opts.engine !== 'none') !== (report.enginePid !== undefined))
        throw new Error('no engine pid');
      // A 'userns' job reports the helper holding the namespaces, and only it does.
      if ((opts.netns === 'userns') !== (report.usernsPid !== undefined))
        throw new Error('no user namespace helper pid');
      return report;
    },
  });
  return { pid, ...report, confirm };
}
