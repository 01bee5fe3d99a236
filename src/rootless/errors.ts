import { statSync } from 'node:fs';
import type { PodnetErrorCode, SystemErrorCode } from '../error-codes.js';
import { PodnetError, type PodnetErrorOptions } from '../errors.js';

/** The rootless engines podnet runs. */
export type EngineName = 'slirp4netns' | 'pasta';

const DEBIAN_PACKAGE: Record<EngineName, string> = { slirp4netns: 'slirp4netns', pasta: 'passt' };

/** No engine binary on PATH, or none at the path that was given (`engine` says which). */
export class EngineMissingError extends PodnetError {
  /** Which engine. */
  readonly engine: EngineName;
  /** The path that was given, or undefined when PATH was searched. */
  readonly path?: string;

  constructor(engine: EngineName, path: string | undefined, options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_ENGINE_MISSING',
      path === undefined
        ? `${engine} was not found on PATH: install it (Debian: apt-get install ${DEBIAN_PACKAGE[engine]}) or give its path`
        : `${engine} was not found at '${path}' (or is not executable)`,
      options,
    );
    this.engine = engine;
    if (path !== undefined) this.path = path;
  }
}

/** The binary did not answer `--version`/`--help` like the engine (`engine`) does. */
export class EngineProbeError extends PodnetError {
  /** Which engine. */
  readonly engine: EngineName;
  /** The binary that was probed. */
  readonly path: string;

  constructor(engine: EngineName, path: string, detail: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_ENGINE_PROBE', `probing ${engine} '${path}': ${detail}`, options);
    this.engine = engine;
    this.path = path;
  }
}

/** Why an engine did not become ready. */
export type EngineStartFailure =
  | 'spawn' // it could not be started at all
  | 'exited' // it exited before it was ready
  | 'killed' // a signal ended it before it was ready
  | 'timeout' // it was not ready within the deadline (podnet killed it)
  | 'aborted'; // the caller's AbortSignal fired (podnet killed it)

/** Facts about a failed start, kept on the error for callers and logs. */
export interface EngineStartInfo {
  /** What went wrong. */
  reason: EngineStartFailure;
  /** The binary that was started. */
  path: string;
  /** Its process id, when it was spawned (it led its own process group). */
  pid?: number;
  /** Exit code, when it exited. */
  exitCode?: number | null;
  /** The signal that ended it, when one did. */
  signal?: NodeJS.Signals | null;
  /** The end of what it wrote to its log. */
  log?: string;
}

/**
 * A hint for an engine failure whose cause is known from its log, or
 * undefined. The one known today: /dev/net/tun left at mode 0600 (no udev,
 * some minimal images), where every unprivileged slirp4netns and pasta fails
 * with EACCES.
 */
export function engineFailureHint(log: string): string | undefined {
  const denied = /\/dev\/net\/tun/.test(log) && /EACCES|Permission denied/i.test(log);
  // pasta only says it could not open the tun device: look at its mode.
  const pastaTun = /failed to open tun/i.test(log) && tunNotWorldWritable();
  if (denied || pastaTun) {
    return (
      'cannot open /dev/net/tun (EACCES): unprivileged users need it to be mode 0666, ' +
      'as distributions ship it; as root run `chmod 0666 /dev/net/tun`'
    );
  }
  return undefined;
}

function tunNotWorldWritable(): boolean {
  try {
    return (statSync('/dev/net/tun').mode & 0o006) !== 0o006;
  } catch {
    return false;
  }
}

/** An engine (`engine` says which) could not be started or did not become ready. */
export class EngineStartError extends PodnetError {
  /** Which engine. */
  readonly engine: EngineName;
  /** What went wrong. */
  readonly reason: EngineStartFailure;
  /** The binary that was started. */
  readonly path: string;
  /** Its process id, when it was spawned (it led its own process group, now gone). */
  readonly pid?: number;
  /** Exit code, when it exited on its own. */
  readonly exitCode: number | null;
  /** The signal that ended it, if any. */
  readonly signal: NodeJS.Signals | null;
  /** The end of its log ('' when it wrote nothing). */
  readonly log: string;

  constructor(
    engine: EngineName,
    detail: string,
    info: EngineStartInfo,
    options: PodnetErrorOptions = {},
  ) {
    const log = info.log ?? '';
    const hint = engineFailureHint(log);
    const logPart = log.trim() === '' ? '' : `; its log ends with:\n${log.trimEnd()}`;
    super(
      'ERR_PODNET_ENGINE_START',
      `starting ${engine} '${info.path}': ${detail}${hint === undefined ? '' : `: ${hint}`}${logPart}`,
      options,
    );
    this.engine = engine;
    this.reason = info.reason;
    this.path = info.path;
    if (info.pid !== undefined) this.pid = info.pid;
    this.exitCode = info.exitCode ?? null;
    this.signal = info.signal ?? null;
    this.log = log;
  }
}

/**
 * pasta gave the namespace no address podnet's forwarder may dial (a
 * global, non-loopback one): the host it copies from has none, or the
 * caller's options left none.
 */
export class PastaAddressError extends PodnetError {
  /** The namespace that was read. */
  readonly netns: string;
  /** Every address found there, as ADDRESS/PREFIX. */
  readonly addresses: readonly string[];

  constructor(netns: string, addresses: readonly string[], options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_PASTA_ADDRESS',
      `pasta configured no address in '${netns}' that podnet's port forwarder can dial (found: ${addresses.join(', ') || 'none'}); give pasta one with '-a ADDRESS'`,
      options,
    );
    this.netns = netns;
    this.addresses = addresses;
  }
}

/** slirp4netns answered an API request with `{"error":{"desc":...}}`. */
export class Slirp4netnsApiError extends PodnetError {
  /** The request that failed (`add_hostfwd`, ...). */
  readonly execute: string;
  /** slirp4netns's own description of the error. */
  readonly desc: string;

  constructor(execute: string, desc: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_SLIRP4NETNS_API', `slirp4netns API ${execute} failed: ${desc}`, options);
    this.execute = execute;
    this.desc = desc;
  }
}

/** An API reply that is not JSON or not shaped as the request's reply must be. */
export class Slirp4netnsApiReplyError extends PodnetError {
  /** The request that was sent. */
  readonly execute: string;
  /** The start of the reply as received (for diagnosis). */
  readonly reply: string;

  constructor(execute: string, reply: string, detail: string, options: PodnetErrorOptions = {}) {
    const shown = reply.length > 512 ? `${reply.slice(0, 512)}...` : reply;
    super(
      'ERR_PODNET_SLIRP4NETNS_API_REPLY',
      `malformed reply from slirp4netns API to ${execute}: ${detail}: ${JSON.stringify(shown)}`,
      options,
    );
    this.execute = execute;
    this.reply = shown;
  }
}

/** The API socket could not be reached, or a request took longer than its deadline. */
export class Slirp4netnsApiIoError extends PodnetError {
  /** The request that was being sent. */
  readonly execute: string;
  /** The API socket's path. */
  readonly socketPath: string;
  /** True when the request's deadline passed. */
  readonly timedOut: boolean;

  constructor(
    execute: string,
    socketPath: string,
    detail: string,
    timedOut: boolean,
    options: PodnetErrorOptions = {},
  ) {
    super(
      'ERR_PODNET_SLIRP4NETNS_API_IO',
      `slirp4netns API ${execute} on '${socketPath}': ${detail}`,
      options,
    );
    this.execute = execute;
    this.socketPath = socketPath;
    this.timedOut = timedOut;
  }
}

/**
 * A detached forwarder failed to start. `code` is the forwarder's own
 * error code (ERR_PODNET_PORT_IN_USE, ERR_PODNET_INVALID_ARGUMENT, an errno
 * name, ...), or ERR_PODNET_FORWARDER / ERR_PODNET_FORWARDER_TIMEOUT when
 * the process gave no usable report.
 */
export class ForwarderProcessError extends PodnetError {
  constructor(
    code: PodnetErrorCode | SystemErrorCode,
    message: string,
    options: PodnetErrorOptions = {},
  ) {
    super(code, `forwarder process: ${message}`, options);
  }
}
