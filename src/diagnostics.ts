import { AsyncLocalStorage } from 'node:async_hooks';
import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog, format } from 'node:util';
import { InvalidArgumentError } from './errors.js';

/**
 * Every diagnostics channel podnet publishes on, named `podnet:<area>:<event>`.
 * Subscribe with `diagnostics_channel.subscribe(name, fn)`.
 */
export const channelNames = [
  'podnet:netns:create',
  'podnet:netns:remove',
  'podnet:netns:open',
  // ns.spawn started a process: { path, command, args, pid }.
  'podnet:netns:spawn',
  'podnet:cni:exec',
  'podnet:cni:result',
  'podnet:network:setup',
  'podnet:network:teardown',
  'podnet:network:gc',
  // A running container's connect, disconnect or reload: { id, network, phase }
  // (planned, plugin:N before plugin N of its ADD, attached; detaching once a
  // disconnect is journalled, detached; reloaded).
  'podnet:network:connect',
  // Before gc checks whether one container is alive (tests inject faults here).
  'podnet:network:gc:check',
  // After each step of the native driver's attach (phase: leased, bridge, veth, container, firewall, cached).
  'podnet:bridge:attach',
  // A test cluster's build (phase: switch, node:N, wired) and pods (pod:NAME).
  'podnet:testing:cluster',
  'podnet:slirp:start',
  'podnet:slirp:exit',
  'podnet:slirp:api',
] as const;

/** Name of one podnet diagnostics channel. */
export type ChannelName = (typeof channelNames)[number];

/**
 * The operations podnet traces with `diagnostics_channel.tracingChannel(name)`:
 * a setup, a teardown, and each plugin execution. Node names their events
 * `tracing:<name>:start`, `:end`, `:asyncStart`, `:asyncEnd` and `:error`;
 * every event of one operation gets the same context object (see
 * {@link TraceContext}), so a subscriber can keep a span or a start time on it.
 */
export const tracingChannelNames = [
  'podnet:network:setup',
  'podnet:network:teardown',
  'podnet:cni:exec',
] as const;

/** Name of one operation podnet traces (see {@link tracingChannelNames}). */
export type TracingChannelName = (typeof tracingChannelNames)[number];

/**
 * The W3C trace context an operation runs in, as a tracing channel's context
 * object carries it. At `start` it holds the enclosing trace: for a setup,
 * the `traceparent` of its options; for a plugin execution, that of the setup
 * or teardown it belongs to. A `start` subscriber (an OpenTelemetry
 * instrumentation) may replace both fields with its own span's, and the
 * operation then runs in that trace: plugins get `TRACEPARENT` and
 * `TRACESTATE` in their environment, as libcni passes them. A trace is
 * active when the value left after `start` is a valid traceparent; one that
 * is not is ignored, as libcni ignores an invalid span context.
 */
export interface TraceContext {
  /** `version-traceid-parentid-flags`, lowercase hex, as the W3C header has it. */
  traceparent?: string | undefined;
  /** The W3C `tracestate` list, passed on only with a valid traceparent. */
  tracestate?: string | undefined;
}

const channels = new Map(channelNames.map((n) => [n, diagnosticsChannel.channel(n)]));
const tracing = new Map(tracingChannelNames.map((n) => [n, diagnosticsChannel.tracingChannel(n)]));

/** Publishes `message` on `name` when anyone listens (cheap otherwise). */
export function publish(name: ChannelName, message: object): void {
  const ch = channels.get(name);
  if (ch?.hasSubscribers) ch.publish(message);
}

// Version 00's shape; a version podnet does not know is still 2 hex digits
// but not ff (reserved as invalid), and ids of all zeros are invalid.
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
// tracestate list members are printable ASCII; 512 is the spec's limit on
// what a propagator must keep.
const TRACESTATE = /^[\x20-\x7e]{0,512}$/;

/**
 * The trace in `context` when it is a valid one (a well-formed traceparent,
 * and a tracestate of printable ASCII when there is one), else undefined.
 */
export function validTrace(context: TraceContext): TraceContext | undefined {
  const { traceparent, tracestate } = context;
  if (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent)) return undefined;
  if (typeof tracestate !== 'string' || tracestate === '') return { traceparent };
  return TRACESTATE.test(tracestate) ? { traceparent, tracestate } : { traceparent };
}

/**
 * Checks a trace context given by a caller (setup options): undefined when
 * none, else both fields valid, or InvalidArgumentError.
 */
export function checkTrace(context: TraceContext): TraceContext | undefined {
  if (context.traceparent === undefined) {
    if (context.tracestate !== undefined)
      throw new InvalidArgumentError('tracestate needs a traceparent');
    return undefined;
  }
  const trace = validTrace(context);
  if (trace === undefined) {
    throw new InvalidArgumentError(
      `traceparent '${String(context.traceparent)}' is not a W3C traceparent (version-traceid-parentid-flags, lowercase hex)`,
    );
  }
  if (
    context.tracestate !== undefined &&
    context.tracestate !== '' &&
    trace.tracestate !== context.tracestate
  ) {
    throw new InvalidArgumentError('tracestate must be at most 512 printable ASCII characters');
  }
  return trace;
}

// The trace of the operation running now, through every await inside it:
// a plugin execution started by a setup finds the setup's trace here
// without each layer in between passing it on.
const activeTrace = new AsyncLocalStorage<TraceContext | undefined>();

/** The trace the current operation runs in, if any (see {@link TraceContext}). */
export function currentTrace(): TraceContext | undefined {
  return activeTrace.getStore();
}

/**
 * Runs `fn` as one traced operation on tracing channel `name`: `context`
 * starts with the enclosing trace (unless it brings its own), `start`
 * subscribers may change it, and `fn` runs in the trace they leave.
 */
export function traced<T>(
  name: TracingChannelName,
  context: object,
  fn: () => Promise<T>,
): Promise<T> {
  // Any object (the operation's facts) that may carry TraceContext's fields.
  const trace = context as TraceContext;
  if (trace.traceparent === undefined) {
    const enclosing = activeTrace.getStore();
    if (enclosing !== undefined) Object.assign(context, enclosing);
  }
  const ch = tracing.get(name)!;
  const run = (): Promise<T> => activeTrace.run(validTrace(trace), fn);
  return ch.hasSubscribers ? ch.tracePromise(run, context) : run();
}

// NODE_DEBUG=podnet is just one more subscriber, as undici does it.
const log = debuglog('podnet');
if (log.enabled) {
  for (const [name, ch] of channels) {
    ch.subscribe((message) => log('%s %s', name, format('%o', message)));
  }
  for (const [name, ch] of tracing) {
    const say =
      (event: string) =>
      (context: object): void =>
        log('%s:%s %s', name, event, format('%o', context));
    ch.subscribe({
      start: say('start'),
      end: () => {},
      asyncStart: () => {},
      asyncEnd: say('asyncEnd'),
      error: say('error'),
    });
  }
}
