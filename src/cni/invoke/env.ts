// The environment of a plugin call, as libcni's invoke.Args: built in one
// place for every command. Plugins get a minimal environment (PATH, for the
// iptables and friends they run, plus what the runtime's caller adds) and
// the spec's CNI_* variables; nothing else of this process leaks in.
import type { TraceContext } from '../../diagnostics.js';
import type { CniCommand } from '../errors.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** This process's PATH (or a standard one), overlaid with `extra`. */
export function baseEnv(
  extra: Readonly<Record<string, string>> = {},
): Readonly<Record<string, string>> {
  return { PATH: process.env['PATH'] || DEFAULT_PATH, ...extra };
}

/** The container side of a call (ADD, DEL, CHECK); GC, STATUS and VERSION have none. */
export interface PluginEnvAttachment {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS, as ordered pairs (already validated). */
  args: readonly (readonly [string, string])[];
}

/**
 * The environment of one call: `base`, then CNI_COMMAND and CNI_PATH, and
 * for a command on an attachment CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and
 * CNI_ARGS (`K=V;K=V`).
 */
export function pluginEnv(
  base: Readonly<Record<string, string>>,
  command: CniCommand,
  pluginDirs: readonly string[],
  attachment?: PluginEnvAttachment,
): Record<string, string> {
  const env: Record<string, string> = { ...base, CNI_COMMAND: command };
  if (attachment !== undefined) {
    env['CNI_CONTAINERID'] = attachment.containerId;
    env['CNI_NETNS'] = attachment.netns;
    env['CNI_IFNAME'] = attachment.ifName;
    env['CNI_ARGS'] = attachment.args.map(([k, x]) => `${k}=${x}`).join(';');
  }
  env['CNI_PATH'] = pluginDirs.join(':');
  return env;
}

/**
 * `env` with the trace a plugin call runs in: TRACEPARENT, and TRACESTATE
 * when the trace has one, the environment carriers of W3C trace context
 * (OpenTelemetry's OTEP 0258) that libcni passes its plugins. A call in no
 * trace gets `env` as it is.
 */
export function withTrace(
  env: Readonly<Record<string, string>>,
  trace: TraceContext | undefined,
): Readonly<Record<string, string>> {
  if (trace?.traceparent === undefined) return env;
  const traced: Record<string, string> = { ...env, TRACEPARENT: trace.traceparent };
  // A tracestate of the caller's base environment belongs to another trace.
  delete traced['TRACESTATE'];
  if (trace.tracestate !== undefined) traced['TRACESTATE'] = trace.tracestate;
  return traced;
}
