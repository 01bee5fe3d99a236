// One plugin call of the exec protocol, as libcni's ExecPluginWithResult:
// the config on stdin, the environment, the executor, and the outcome
// turned into the output or a podnet error; every call is published on
// podnet:cni:exec. The runtime above only decides which calls to make.
import { publish } from '../../diagnostics.js';
import type { CniPluginCall } from '../errors.js';
import { PluginExecError, type PluginExecutor, type PluginOutput } from './exec.js';
import { execError, pluginError } from './output.js';

/** How one plugin call runs. */
export interface InvokeOptions {
  /** Runs the process. */
  exec: PluginExecutor;
  /** Deadline of the call. */
  timeoutMs: number;
  /** Stdout cap. */
  maxOutputBytes: number;
  /** Kills the plugin when it aborts. */
  signal?: AbortSignal | undefined;
  /** Awaited once the process exists, before it reads its config (see ExecPluginOptions). */
  onSpawn?: ((pid: number) => Promise<void>) | undefined;
  /** The attachment, for diagnostics only. */
  containerId?: string | undefined;
  /** The interface, for diagnostics only. */
  ifName?: string | undefined;
}

/**
 * Runs plugin `path` with `config` as its stdin and exactly `env` as its
 * environment. Resolves with its output when it exits 0; rejects with a
 * CniError (its error JSON), CniOutputError, CniTimeoutError, AbortError or
 * PodnetSystemError (it could not be started), or the onSpawn hook's error.
 */
export async function invokePlugin(
  call: CniPluginCall,
  path: string,
  config: Record<string, unknown>,
  env: Readonly<Record<string, string>>,
  options: InvokeOptions,
): Promise<PluginOutput> {
  const started = performance.now();
  let out: PluginOutput | undefined;
  let failure: unknown;
  try {
    out = await options.exec(path, JSON.stringify(config), env, {
      timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes,
      signal: options.signal,
      onSpawn: options.onSpawn,
    });
    if (out.exitCode !== 0) throw pluginError(call, out);
    return out;
  } catch (error) {
    failure =
      error instanceof PluginExecError ? execError(call, path, error, options.timeoutMs) : error;
    throw failure;
  } finally {
    publish('podnet:cni:exec', {
      ...call,
      path,
      containerId: options.containerId,
      ifName: options.ifName,
      durationMs: performance.now() - started,
      exitCode: out?.exitCode,
      error: failure,
    });
  }
}
