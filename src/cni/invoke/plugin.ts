// One plugin call of the exec protocol, as libcni's ExecPluginWithResult:
// the config on stdin, the environment, the executor, and the outcome
// turned into the output or a podnet error; every call is published on
// podnet:cni:exec, and traced on the tracing channel of that name. The
// runtime above only decides which calls to make.
import { currentTrace, publish, traced } from '../../diagnostics.js';
import type { CniPluginCall } from '../errors.js';
import { withTrace } from './env.js';
import {
  type ExecPluginOptions,
  PluginExecError,
  type PluginExecutor,
  type PluginOutput,
} from './exec.js';
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
  /** The namespace the plugin runs in (see ExecPluginOptions.netns). */
  netns?: ExecPluginOptions['netns'];
  /** Awaited once the process exists, before it reads its config (see ExecPluginOptions). */
  onSpawn?: ((pid: number) => Promise<void>) | undefined;
  /** The attachment, for diagnostics only. */
  containerId?: string | undefined;
  /** The interface, for diagnostics only. */
  ifName?: string | undefined;
}

/**
 * The context object of one plugin execution on the `podnet:cni:exec`
 * tracing channel: the call, the binary, the attachment, and the trace
 * (see TraceContext) whose TRACEPARENT the plugin gets.
 */
export interface PluginExecContext extends CniPluginCall {
  path: string;
  containerId?: string | undefined;
  ifName?: string | undefined;
  traceparent?: string | undefined;
  tracestate?: string | undefined;
}

/**
 * Runs plugin `path` with `config` as its stdin and `env` as its
 * environment, plus TRACEPARENT/TRACESTATE when the call runs in a trace.
 * Resolves with its output when it exits 0; rejects with a CniError (its
 * error JSON), CniOutputError, CniTimeoutError, AbortError or
 * PodnetSystemError (it could not be started), or the onSpawn hook's error.
 */
export function invokePlugin(
  call: CniPluginCall,
  path: string,
  config: Record<string, unknown>,
  env: Readonly<Record<string, string>>,
  options: InvokeOptions,
): Promise<PluginOutput> {
  const context: PluginExecContext = {
    ...call,
    path,
    containerId: options.containerId,
    ifName: options.ifName,
  };
  return traced('podnet:cni:exec', context, () => execute(call, path, config, env, options));
}

async function execute(
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
    out = await options.exec(path, JSON.stringify(config), withTrace(env, currentTrace()), {
      timeoutMs: options.timeoutMs,
      maxOutputBytes: options.maxOutputBytes,
      signal: options.signal,
      onSpawn: options.onSpawn,
      netns: options.netns,
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
