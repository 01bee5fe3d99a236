import { constants } from 'node:os';
import { getSystemErrorName } from 'node:util';
import type { PodnetErrorCode, SystemErrorCode } from './error-codes.js';

const BRAND = Symbol.for('podnet.error');

/** Options shared by every podnet error. */
export interface PodnetErrorOptions {
  /** The error that led to this one (kept as `error.cause`). */
  cause?: unknown;
}

/**
 * Base class of every error podnet throws. `code` is stable across releases
 * (an `ERR_PODNET_*` code of the table in error-codes.ts, or an errno name
 * such as `ENOENT` for system errors), so callers branch on it rather than
 * on the message.
 */
export class PodnetError extends Error {
  /** Stable machine-readable code. */
  readonly code: PodnetErrorCode | SystemErrorCode;

  constructor(
    code: PodnetErrorCode | SystemErrorCode,
    message: string,
    options: PodnetErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * True for any podnet error, even one thrown by another copy of the package
 * (where `instanceof` would fail).
 */
export function isPodnetError(value: unknown): value is PodnetError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[BRAND] === true
  );
}

/** Fields of a failed system call, as Node reports them. */
export interface SystemErrorInfo {
  /** Negative errno, as in Node's own system errors. */
  errno: number;
  /** The system call that failed. */
  syscall: string;
  /** The file the call was about, if any. */
  path?: string;
}

/**
 * A failed system call, shaped like Node's own SystemError: `code` is the
 * errno name (`ENOENT`, `EPERM`, ...), `errno` is negative, plus `syscall`
 * and `path`.
 */
export class PodnetSystemError extends PodnetError {
  /** Negative errno (`-2` for ENOENT), as Node reports it. */
  readonly errno: number;
  /** The system call that failed. */
  readonly syscall: string;
  /** The path involved, when there is one. */
  readonly path?: string;

  constructor(what: string, info: SystemErrorInfo, options: PodnetErrorOptions = {}) {
    const errno = info.errno > 0 ? -info.errno : info.errno;
    const code = errnoName(errno);
    const where = info.path === undefined ? '' : ` '${info.path}'`;
    super(code, `${what}: ${code}: ${info.syscall}${where}`, options);
    this.errno = errno;
    this.syscall = info.syscall;
    if (info.path !== undefined) this.path = info.path;
  }
}

function errnoName(errno: number): SystemErrorCode {
  try {
    const name = getSystemErrorName(errno);
    if (!name.startsWith('Unknown')) return name as SystemErrorCode;
  } catch {
    // Not an errno libuv knows: the table below may.
  }
  // libuv names only the errnos it maps (not ENOEXEC, which an exec can
  // fail with); the kernel's own table, as os.constants has it, names the rest.
  const known = Object.entries(constants.errno).find(([, n]) => n === -errno);
  return known ? (known[0] as SystemErrorCode) : `Unknown system error ${errno}`;
}

/** A user-supplied option or argument is invalid; nothing was changed. */
export class InvalidArgumentError extends PodnetError {
  constructor(message: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_INVALID_ARGUMENT', message, options);
  }
}

/** A path exists but is not a network namespace. */
export class NotANamespaceError extends PodnetError {
  /** The path that was checked. */
  readonly path: string;

  constructor(path: string, detail: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_NOT_A_NAMESPACE', `'${path}' is not a network namespace: ${detail}`, options);
    this.path = path;
  }
}

/** A network interface was not found in a namespace. */
export class LinkNotFoundError extends PodnetError {
  /** The interface name that was looked up. */
  readonly ifname: string;
  /** The namespace it was looked up in. */
  readonly netns: string;

  constructor(ifname: string, netns: string, options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_LINK_NOT_FOUND',
      `no interface '${ifname}' in network namespace '${netns}'`,
      options,
    );
    this.ifname = ifname;
    this.netns = netns;
  }
}

/** A netlink reply could not be decoded (truncated, out of bounds, or unexpected). */
export class NetlinkDecodeError extends PodnetError {
  constructor(message: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_NETLINK_DECODE', `malformed netlink reply: ${message}`, options);
  }
}

/**
 * The kernel refused a batch on podnet's nftables table, which it then
 * aborted whole: nothing of the batch was applied. `step` says what the
 * refused message was for; `errno` is the kernel's answer (0 when it gave
 * none to a message that asked for one).
 */
export class NftBatchError extends PodnetError {
  /** Negative errno, as in Node's system errors (0: the message got no answer). */
  readonly errno: number;
  /** What the refused message did (`adding tcp 8080 to map dnat4any`, ...). */
  readonly step: string;

  constructor(what: string, step: string, errno: number, options: PodnetErrorOptions = {}) {
    const name = errno === 0 ? 'no answer' : errnoName(-Math.abs(errno));
    super('ERR_PODNET_NFT', `${what}: ${step}: ${name}`, options);
    this.errno = errno === 0 ? 0 : -Math.abs(errno);
    this.step = step;
  }
}

/** An operation was used on a handle that is already closed. */
export class ClosedError extends PodnetError {
  constructor(what: string) {
    super('ERR_PODNET_CLOSED', `${what} is closed`);
  }
}

/** An operation was aborted through its AbortSignal. */
export class AbortError extends PodnetError {
  constructor(what: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_ABORTED', `${what} was aborted`, options);
  }
}

/**
 * Several steps failed on a path that carries on past a failure (teardown,
 * rollback, gc): every failure is in `errors`, in the order they happened,
 * and the first is `cause`. Every such path throws this shape.
 */
export class AggregatePodnetError extends PodnetError {
  /** Every failure, in order. */
  readonly errors: readonly unknown[];

  /**
   * `what` names the whole operation; the message adds each failure's own.
   * `errors` must hold at least one failure.
   */
  constructor(code: PodnetErrorCode, what: string, errors: readonly unknown[], note = '') {
    const each = errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
    super(code, `${what}: ${errors.length} failure(s): ${each}${note}`, { cause: errors[0] });
    this.errors = [...errors];
  }
}
