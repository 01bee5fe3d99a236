// What a plugin call's outcome means, as libcni's raw_exec.go: a process
// that did not run to its end, a non-zero exit with the spec's error JSON
// (or without it), and stdout that must be a result. Plugin output is
// untrusted: anything not shaped as the spec says is a CniOutputError.
import { AbortError, isPodnetError, PodnetSystemError } from '../../errors.js';
import { CniError, CniOutputError, type CniPluginCall, CniTimeoutError } from '../errors.js';
import { type CniResult, convertResult, parseResult, ResultFormatError } from '../result.js';
import type { CniVersion } from '../version.js';
import type { PluginExecError, PluginOutput } from './exec.js';

/** The podnet error for a plugin process that did not run to its end. */
export function execError(
  call: CniPluginCall,
  path: string,
  error: PluginExecError,
  timeoutMs: number,
): Error {
  const f = error.failure;
  switch (f.kind) {
    case 'timeout':
      return new CniTimeoutError(call, timeoutMs);
    case 'aborted':
      return new AbortError(`CNI plugin '${call.plugin}' ${call.command}`, { cause: f.reason });
    case 'too-large':
      return new CniOutputError(call, `more than ${f.limit} bytes on stdout; killed`);
    case 'spawn': {
      // The exec helper's report it could not read: already podnet's error.
      if (f.error.errno === undefined && isPodnetError(f.error)) return f.error;
      // It could not join the runtime's namespace: that call, that path.
      const setns = f.error.syscall === 'setns' && f.error.path !== undefined;
      return new PodnetSystemError(
        `executing CNI plugin '${call.plugin}'`,
        {
          errno: f.error.errno ?? 0,
          syscall: setns ? 'setns' : 'spawn',
          path: setns ? f.error.path! : path,
        },
        { cause: f.error },
      );
    }
    case 'hook':
      return f.error instanceof Error ? f.error : new Error(String(f.error));
  }
}

/**
 * The error of a plugin that exited non-zero, as libcni's pluginErr: the
 * error JSON on stdout; with no stdout, stderr is the message; stdout that
 * is not error JSON is a separate error.
 */
export function pluginError(call: CniPluginCall, out: PluginOutput): Error {
  const how = out.signal === null ? `exit status ${out.exitCode}` : `signal ${out.signal}`;
  const stdout = out.stdout.toString('utf8').trim();
  if (stdout === '') {
    const stderr = out.stderr.toString('utf8').trim();
    return new CniError(call, {
      code: 0,
      msg: stderr === '' ? `failed with no error message (${how})` : `failed (${how}): ${stderr}`,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (cause) {
    return new CniOutputError(call, `${how}, and stdout is not error JSON: ${preview(stdout)}`, {
      cause,
    });
  }
  const e = raw as { code?: unknown; msg?: unknown; details?: unknown } | null;
  if (
    typeof e !== 'object' ||
    e === null ||
    (typeof e.code !== 'number' && typeof e.msg !== 'string')
  ) {
    return new CniOutputError(call, `${how}, and stdout is not error JSON: ${preview(stdout)}`);
  }
  return new CniError(call, {
    code: typeof e.code === 'number' ? e.code : 0,
    msg: typeof e.msg === 'string' ? e.msg : '',
    ...(typeof e.details === 'string' ? { details: e.details } : {}),
  });
}

/** A successful call's stdout as JSON; CniOutputError when it is not. */
export function parseJson(call: CniPluginCall, stdout: Buffer): unknown {
  const text = stdout.toString('utf8');
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new CniOutputError(call, `stdout is not JSON: ${preview(text)}`, { cause });
  }
}

/** A successful ADD's stdout as a result in `version`; CniOutputError when it is not one. */
export function parsePluginResult(
  call: CniPluginCall,
  stdout: Buffer,
  version: CniVersion,
): CniResult {
  const raw = parseJson(call, stdout);
  try {
    return convertResult(parseResult(raw, version), version);
  } catch (error) {
    if (error instanceof ResultFormatError)
      throw new CniOutputError(call, error.message, { cause: error });
    throw error;
  }
}

function preview(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text);
}
