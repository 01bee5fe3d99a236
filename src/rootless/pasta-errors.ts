import { PodnetError, type PodnetErrorOptions } from '../errors.js';

/** No pasta binary on PATH, or none at the path that was given. */
export class PastaMissingError extends PodnetError {
  /** The path that was given, or undefined when PATH was searched. */
  readonly path?: string;

  constructor(path: string | undefined, options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_PASTA_MISSING',
      path === undefined
        ? 'pasta was not found on PATH: install it (Debian: apt-get install passt) or give its path'
        : `pasta was not found at '${path}' (or is not executable)`,
      options,
    );
    if (path !== undefined) this.path = path;
  }
}

/** The binary did not answer `--version`/`--help` like pasta does. */
export class PastaProbeError extends PodnetError {
  /** The binary that was probed. */
  readonly path: string;

  constructor(path: string, detail: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_PASTA_PROBE', `probing pasta '${path}': ${detail}`, options);
    this.path = path;
  }
}

/** Why pasta did not become ready. */
export type PastaStartFailure =
  | 'spawn' // it could not be started at all
  | 'exited' // it exited before it was ready
  | 'killed' // a signal ended it before it was ready
  | 'timeout' // it was not ready within the deadline (podnet killed it)
  | 'aborted'; // the caller's AbortSignal fired (podnet killed it)

/** Facts about a failed start, kept on the error for callers and logs. */
export interface PastaStartInfo {
  /** What went wrong. */
  reason: PastaStartFailure;
  /** The binary that was started. */
  path: string;
  /** Its process id, when it was spawned (it led its own process group). */
  pid?: number;
  /** Exit code, when it exited. */
  exitCode?: number | null;
  /** The signal that ended it, when one did. */
  signal?: NodeJS.Signals | null;
  /** The end of what it logged. */
  log?: string;
}

/** pasta could not be started or did not become ready. */
export class PastaStartError extends PodnetError {
  /** What went wrong. */
  readonly reason: PastaStartFailure;
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

  constructor(detail: string, info: PastaStartInfo, options: PodnetErrorOptions = {}) {
    const log = info.log ?? '';
    const logPart = log.trim() === '' ? '' : `; its log ends with:\n${log.trimEnd()}`;
    super('ERR_PODNET_PASTA_START', `starting pasta '${info.path}': ${detail}${logPart}`, options);
    this.reason = info.reason;
    this.path = info.path;
    if (info.pid !== undefined) this.pid = info.pid;
    this.exitCode = info.exitCode ?? null;
    this.signal = info.signal ?? null;
    this.log = log;
  }
}
