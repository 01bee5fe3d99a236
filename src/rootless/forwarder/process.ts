// The port forwarder in a process of its own (rootlessport's shape): the
// parent's side (spawnForwarderProcess, DetachedPortForwarder). The job it
// sends and the report it reads back are declared in job.ts.
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from '../../errors.js';
import type { PortMapping } from '../../ports.js';
import {
  type ProcessIdentity,
  processAlive,
  processIdentity,
  terminateProcess,
} from '../../process.js';
import { checkContainerAddress } from '../container-address.js';
import { spawnDetached } from '../detached.js';
import { ForwarderProcessError } from '../errors.js';
import {
  type ForwardedPort,
  type ForwarderJob,
  type ForwarderStats,
  parseForwarderReport,
} from './job.js';
import { queryForwarderStats } from './stats-endpoint.js';

/** Options of {@link PortForwarder.spawnDetached}. */
export interface DetachedForwarderOptions {
  /**
   * Path of the container's network namespace (the process opens it
   * itself). Give this or `usernsPid`.
   */
  netns?: string;
  /**
   * For an unprivileged user's namespace, which a path cannot open: the pid
   * of the UserNamespace helper holding it (`userns.pid`). The forwarder
   * process joins it with a helper of its own (UserNamespace.join).
   */
  usernsPid?: number;
  /** The container's own address, never loopback (as for PortForwarder.start). */
  containerAddress: string;
  /** Ports to publish. */
  mappings: PortMapping[];
  /** Idle timeout of UDP flows (default 90 s, as PortForwarder.start). */
  udpIdleTimeoutMs?: number;
  /**
   * What besides SIGTERM ends the forwarder, as slirp4netns's exit fd does:
   * - undefined (default): nothing; it outlives this process until SIGTERM
   *   (record its `identity` so gc can stop it);
   * - 'pipe': this process holds the other end of a pipe given to it as fd
   *   4, so it ends when this process does, or on `stop()`;
   * - an fd of this process: given to it as fd 4; it ends when that reads
   *   EOF (every write end elsewhere closed).
   */
  exitFd?: number | 'pipe';
  /** How long to wait for it to report (default 15 s). */
  timeoutMs?: number;
}

/**
 * A port forwarder running in a detached process of its own (its own
 * process group): reachable as long as it runs, whatever happens to the
 * process that started it. `identity` (pid and start time) is what gc
 * needs to stop it later, from any process.
 */
export class DetachedPortForwarder {
  /** The forwarder process's pid and start time. */
  readonly identity: ProcessIdentity;
  /** The ports forwarded, with the host ports actually bound. */
  readonly ports: readonly ForwardedPort[];
  readonly #exitPipe: Readable | undefined;

  /** @internal Made by {@link spawnForwarderProcess}. */
  constructor(identity: ProcessIdentity, ports: ForwardedPort[], exitPipe: Readable | undefined) {
    this.identity = identity;
    this.ports = ports;
    this.#exitPipe = exitPipe;
  }

  /** The process's pid. */
  get pid(): number {
    return this.identity.pid;
  }

  /** Whether the process still runs (same pid and start time). */
  get running(): boolean {
    return processAlive(this.identity);
  }

  /**
   * Its counters, asked of the process over its stats endpoint
   * (stats-endpoint.ts); undefined once it no longer runs.
   */
  stats(): Promise<ForwarderStats | undefined> {
    return queryForwarderStats(this.identity);
  }

  /**
   * Stops it: closes the exit pipe this process holds (if any), then
   * SIGTERM, and SIGKILL to its group if it has not ended within 3 s.
   */
  async stop(): Promise<void> {
    this.#exitPipe?.destroy();
    await terminateProcess(this.identity);
  }
}

/** Starts forwarder-main.ts and resolves once it forwards every port. */
export async function spawnForwarderProcess(
  opts: DetachedForwarderOptions,
): Promise<DetachedPortForwarder> {
  const { exitFd } = opts;
  if (exitFd !== undefined && exitFd !== 'pipe' && !(Number.isInteger(exitFd) && exitFd >= 0)) {
    throw new InvalidArgumentError(`exitFd must be an fd or 'pipe', not ${String(exitFd)}`);
  }
  // Refused here too, so a bad address starts no process.
  checkContainerAddress(opts.containerAddress);
  const job: ForwarderJob = {
    ...(opts.netns === undefined ? {} : { netns: opts.netns }),
    ...(opts.usernsPid === undefined ? {} : { usernsPid: opts.usernsPid }),
    containerAddress: opts.containerAddress,
    mappings: opts.mappings,
    ...(opts.udpIdleTimeoutMs === undefined ? {} : { udpIdleTimeoutMs: opts.udpIdleTimeoutMs }),
    exitFd: exitFd !== undefined,
  };
  const started = await spawnDetached({
    // Compiled next to this file (dist/rootless/forwarder/forwarder-main.js).
    main: fileURLToPath(new URL('./forwarder-main.js', import.meta.url)),
    job,
    timeoutMs: opts.timeoutMs ?? 15_000,
    ...(exitFd === undefined ? {} : { fd4: exitFd }),
    code: 'ERR_PODNET_FORWARDER',
    timeoutCode: 'ERR_PODNET_FORWARDER_TIMEOUT',
    error: (code, message, cause) => new ForwarderProcessError(code, message, { cause }),
    accept: (msg) => parseForwarderReport(msg).ports,
  });
  // The caller records `identity` itself; from here the forwarder outlives this process.
  started.confirm();
  return new DetachedPortForwarder(processIdentity(started.pid), started.report, started.fd4);
}
