// How the command reports a failure: one line on stderr with a code, and an
// exit status like podman's (0 done, 1 the operation failed, 2 the command
// line is wrong), whatever raised the error: podnet itself, cac's parser,
// node:fs (errno codes), a valibot schema, or plain JavaScript.
import { isPodnetError, PodnetError, type PodnetErrorOptions } from '../errors.js';

/** Exit status of a command that did what it was asked. */
export const EXIT_OK = 0;
/** Exit status when the operation failed (the command line was fine). */
export const EXIT_FAILURE = 1;
/** Exit status when the command line is wrong; nothing was done. */
export const EXIT_USAGE = 2;

/**
 * The command line is wrong: an unknown command or flag, a flag without its
 * value, a missing or extra argument.
 */
export class UsageError extends PodnetError {
  constructor(message: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_USAGE', message, options);
  }
}

/**
 * A command whose answer is its exit status alone (`network exists`): main
 * returns the status and prints nothing.
 */
export class SilentExit extends Error {
  /** The exit status. */
  readonly exitCode: number;

  constructor(exitCode: number) {
    super(`exit ${exitCode}`);
    this.exitCode = exitCode;
  }
}

/** Codes whose errors are the user's command line, not the operation. */
const USAGE_CODES = new Set(['ERR_PODNET_USAGE', 'ERR_PODNET_INVALID_ARGUMENT']);

/** How one error is reported. */
export interface CliErrorReport {
  /** `ERR_PODNET_*`, or the errno name (`ENOENT`) of a system error. */
  code: string;
  /** EXIT_USAGE for the command line's fault, else EXIT_FAILURE. */
  exitCode: typeof EXIT_FAILURE | typeof EXIT_USAGE;
  /** The stderr line, without its newline: `podnet: MESSAGE [CODE]`. */
  line: string;
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null
    ? (value as Record<string, unknown>)[name]
    : undefined;
}

/** A valibot ValiError: its first issue, with the path of the field it is about. */
function valibotMessage(err: Error): string | undefined {
  const issues = field(err, 'issues');
  if (err.name !== 'ValiError' || !Array.isArray(issues) || issues.length === 0) return undefined;
  const path = field(issues[0], 'path');
  const keys = Array.isArray(path) ? path.map((p) => String(field(p, 'key'))) : [];
  const message = String(field(issues[0], 'message'));
  return keys.length > 0 ? `invalid input at ${keys.join('.')}: ${message}` : message;
}

/**
 * cac's parse errors in the words readFlags uses for the same mistakes
 * (cac quotes with backticks and names a flag with its placeholder).
 */
function cacMessage(message: string): string {
  const missingValue = /^option `([^<`]+?)(?: <[^>]*>)?` value is missing$/.exec(message);
  if (missingValue) return `flag '${missingValue[1]?.split(', ').join('/')}' needs a value`;
  const missingArg = /^missing required args for command `([^`]+)`$/.exec(message);
  if (missingArg) return `missing argument: podnet ${missingArg[1]}`;
  const unused = /^Unused args: (.+)$/.exec(message);
  if (unused) {
    const args = unused[1]?.replace(/`/g, "'") ?? '';
    return `unexpected argument${args.includes(', ') ? 's' : ''} ${args}`;
  }
  return message;
}

/** A Node system error (node:fs and friends): code `ENOENT`, with errno and syscall. */
function isSystemError(err: unknown): err is NodeJS.ErrnoException & { code: string } {
  const code = field(err, 'code');
  return (
    typeof code === 'string' &&
    /^E[A-Z0-9]+$/.test(code) &&
    typeof field(err, 'errno') === 'number' &&
    typeof field(err, 'syscall') === 'string'
  );
}

/**
 * The code, exit status and stderr line for ERR. PodnetErrors keep their code
 * (an `ERR_PODNET_*` or errno name); cac's parse errors are usage errors;
 * Node system errors keep their errno code; a valibot error is
 * ERR_PODNET_INVALID_INPUT; anything else ERR_PODNET_INTERNAL. The message
 * is folded onto one line.
 */
export function describeError(err: unknown): CliErrorReport {
  let code: string;
  let message: string;
  const vali = err instanceof Error ? valibotMessage(err) : undefined;
  if (isPodnetError(err)) {
    code = err.code;
    message = err.message;
  } else if (err instanceof Error && err.name === 'CACError') {
    code = 'ERR_PODNET_USAGE';
    message = cacMessage(err.message);
  } else if (isSystemError(err)) {
    code = err.code;
    // Node's message starts with the code ("ENOENT: no such file ..."), which the line ends with.
    message = err.message.startsWith(`${code}: `)
      ? err.message.slice(code.length + 2)
      : err.message;
  } else if (vali !== undefined) {
    code = 'ERR_PODNET_INVALID_INPUT';
    message = vali;
  } else {
    code = 'ERR_PODNET_INTERNAL';
    message = err instanceof Error ? err.message : String(err);
  }
  const oneLine = message.replace(/\s*\n\s*/g, '; ').trim() || 'unknown error';
  return {
    code,
    exitCode: USAGE_CODES.has(code) ? EXIT_USAGE : EXIT_FAILURE,
    line: `podnet: ${oneLine} [${code}]`,
  };
}
