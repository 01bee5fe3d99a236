// Undoing a container's network from its journal (the state file): the one
// path that a failed setup's rollback, teardown and gc all take. Everything
// the journal names is undone, each step tried even when an earlier one
// failed: helpers stopped (only when they are verifiably what the journal
// says), every network DELeted with the runtime config its ADD got (an ADD
// cut short gets a DEL of the plugins it reached, with the last result
// known), the namespace removed if podnet made it. The state is deleted
// only when all of that succeeded, so a failure can be retried.
import { lstat, rm, unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { type BridgeDriver, type BridgeNetwork, bridgeNetworkOf } from '../bridge/index.js';
import {
  type CniDelOptions,
  type CniResult,
  type CniRuntime,
  normalizeResult,
  parseNetworkList,
} from '../cni/index.js';
import { publish } from '../diagnostics.js';
import { AggregatePodnetError, isPodnetError, NotANamespaceError, PodnetError } from '../errors.js';
import { checkOwnDir, checkPrivateDir, UnsafePathError } from '../fsafe.js';
import { USERNS_HELPER } from '../native.js';
import { NetworkNamespace } from '../netns/index.js';
import { type ExpandedPort, expandPortMappings } from '../ports.js';
import { killProcessGroup, processArgv, processStatus, terminateProcess } from '../process.js';
import type { StateStore } from './state.js';
import type {
  AttachedNetwork,
  ContainerState,
  HelperProcess,
  RecordedRuntimeConf,
} from './types.js';

/** Steps of a teardown, rollback or gc failed: all of them in `errors`, the first as `cause`. */
export class TeardownError extends AggregatePodnetError {
  /** The container whose network was being undone. */
  readonly id: string;

  constructor(id: string, errors: readonly unknown[]) {
    super(
      'ERR_PODNET_TEARDOWN',
      `tearing down container '${id}'`,
      errors,
      ' (its state is kept: tear down again or run gc)',
    );
    this.id = id;
  }
}

/** What undoing needs from its Networking. */
export interface UndoContext {
  cni: CniRuntime;
  store: StateStore;
  bridge: BridgeDriver;
}

/** Whether the container's namespace is held by a UserNamespace helper rather than a mount. */
export function heldByProcess(state: ContainerState): boolean {
  return state.helpers.some((h) => h.kind === 'userns');
}

/**
 * Undoes everything the journal names and deletes the state; the caller
 * holds the container's lock. Returns the pids it signalled. Throws a
 * TeardownError (state kept) if any step failed.
 */
export async function undo(ctx: UndoContext, state: ContainerState): Promise<number[]> {
  const errors: unknown[] = [];
  const killed = await stopHelpers(state.helpers, errors);
  // An engine that stopped with its owner dead left its private directory
  // (named as engines name them: checked when the state was read).
  for (const h of state.helpers) {
    if (h.dir === undefined || processStatus(h) !== 'dead') continue;
    await removeEngineDir(h.dir).catch((e: unknown) => errors.push(e));
  }
  // DEL gets what ADD got (libcni passes the same RuntimeConf): portmap,
  // for one, finds its rules through the portMappings capability.
  await undoPending(ctx, state).catch((e: unknown) =>
    errors.push(...(e instanceof AggregatePodnetError ? e.errors : [e])),
  );
  for (const n of [...state.networks].reverse())
    await undoNetwork(ctx, state, n).catch((e: unknown) => errors.push(e));
  // A namespace held by a helper went with it (stopped above).
  if (state.ownsNetns && !heldByProcess(state) && state.netnsPath !== '')
    await removeNamespace(state.netnsPath).catch((e: unknown) => errors.push(e));
  publish('podnet:network:teardown', { id: state.id, errors: errors.length });
  if (errors.length) throw new TeardownError(state.id, errors);
  await ctx.store.remove(state.id);
  return killed;
}

/**
 * Undoes the journal's `adding` entry (a network ADD cut short, or a
 * disconnect's DEL under way), however far it got; the caller deletes the
 * entry once this succeeded. `deleteLink`: the namespace stays (a running
 * container's disconnect), so the native driver's veth is deleted too.
 */
export async function undoPending(
  ctx: UndoContext,
  state: ContainerState,
  opts: { deleteLink?: boolean } = {},
): Promise<void> {
  const a = state.adding;
  if (a === undefined) return;
  if (a.driver === 'native') {
    await detachNative(
      ctx,
      state,
      { ...a, ...(a.prevResult === undefined ? {} : { result: a.prevResult }) },
      opts.deleteLink === true,
    );
    return;
  }
  // A plugin whose setup process died may still be running its ADD: it
  // must end before the DEL, or it could finish after it.
  const errors: unknown[] = [];
  if (a.plugin) await killProcessGroup(a.plugin).catch((e: unknown) => errors.push(e));
  await del(ctx.cni, state, a.config, a.ifName, a.runtime, {
    reached: a.reached,
    ...(a.prevResult === undefined ? {} : { prevResult: a.prevResult }),
  }).catch((e: unknown) => errors.push(e));
  if (errors.length === 1) throw errors[0];
  if (errors.length) throw new TeardownError(state.id, errors);
}

/** Undoes one attached network (DEL with what its ADD got, or the native detach). */
export function undoNetwork(
  ctx: UndoContext,
  state: ContainerState,
  n: AttachedNetwork,
): Promise<void> {
  return n.driver === 'native'
    ? detachNative(ctx, state, n, false)
    : del(ctx.cni, state, n.config, n.ifName, n.runtime, {});
}

/**
 * A network's runtime config for an ADD that must give back what the
 * recorded one got: its addresses as `ips` and CNI_ARGS IP, its interface's
 * MAC as `mac` and CNI_ARGS MAC (host-local and tuning read them).
 */
export function sameAddresses(n: AttachedNetwork): RecordedRuntimeConf {
  const r = normalizeResult(n.result);
  const ips = r.ips.map((ip) => ip.address.split('/')[0]!);
  const mac = r.interfaces.find((i) => i.name === n.ifName && i.sandbox)?.mac;
  const args = n.runtime.args.filter(([k]) => k !== 'IP' && k !== 'MAC');
  const capabilityArgs = { ...n.runtime.capabilityArgs };
  if (ips.length) {
    args.push(['IP', ips.join(',')]);
    capabilityArgs['ips'] = ips;
  }
  if (mac !== undefined) {
    args.push(['MAC', mac]);
    capabilityArgs['mac'] = mac;
  }
  return { ...n.runtime, args, capabilityArgs };
}

/**
 * The native driver's reload of one network: its firewall elements (the
 * network's and the container's published ports) added again. Links,
 * addresses and leases are not what a firewall flush removes.
 */
export async function reattachFirewall(
  ctx: UndoContext,
  state: ContainerState,
  n: AttachedNetwork,
): Promise<void> {
  const network = nativeNetworkOf(state, n.config);
  const addresses = normalizeResult(n.result).ips.map((ip) => ip.address);
  await ctx.bridge.refreshFirewall({
    network,
    containerId: state.id,
    ifName: n.ifName,
    addresses,
    ports: nativePorts(state, n.runtime),
  });
}

function nativeNetworkOf(state: ContainerState, config: string): BridgeNetwork {
  const list = parseNetworkList(config, `the state of container '${state.id}'`);
  const network = bridgeNetworkOf(list);
  if ('unsupported' in network)
    throw new PodnetError(
      'ERR_PODNET_BAD_STATE',
      `the state of container '${state.id}' names a network the native driver cannot serve: ${network.unsupported}`,
    );
  return network;
}

/** The published ports a network's attach got (the first network's, as the plugins get them). */
export function nativePorts(state: ContainerState, runtime: RecordedRuntimeConf): ExpandedPort[] {
  return runtime.capabilityArgs['portMappings'] === undefined
    ? []
    : expandPortMappings(state.portMappings);
}

// The native driver's undo of one network, whether its attach completed
// or not: everything is found again by the names the journal holds.
async function detachNative(
  ctx: UndoContext,
  state: ContainerState,
  n: {
    config: string;
    ifName: string;
    runtime: RecordedRuntimeConf;
    hostIfName?: string;
    result?: CniResult;
  },
  deleteLink: boolean,
): Promise<void> {
  const network = nativeNetworkOf(state, n.config);
  const addresses = n.result ? normalizeResult(n.result).ips.map((ip) => ip.address) : [];
  // A namespace that outlives its mount (a { pid } container's) keeps the
  // veth unless it is deleted; one podnet removes takes it along.
  const keepsLink = deleteLink || typeof state.mode === 'object';
  await ctx.bridge.detach(
    {
      network,
      containerId: state.id,
      ifName: n.ifName,
      addresses,
      ports: nativePorts(state, n.runtime),
    },
    keepsLink && n.hostIfName !== undefined ? { hostIfName: n.hostIfName } : {},
  );
}

async function del(
  cni: CniRuntime,
  state: ContainerState,
  config: string,
  ifName: string,
  runtime: RecordedRuntimeConf,
  options: CniDelOptions,
): Promise<void> {
  const list = parseNetworkList(config, `the state of container '${state.id}'`);
  // A DEL with the reached count of -1 asks no plugin: the ADD never began.
  if (options.reached === -1) return;
  await cni.del(
    list,
    {
      containerId: state.id,
      netns: runtime.netns,
      ifName,
      args: runtime.args,
      capabilityArgs: runtime.capabilityArgs,
    },
    options,
  );
}

/** Removes an engine's private directory: a real directory of the caller's, never a link. */
async function removeEngineDir(dir: string): Promise<void> {
  try {
    checkOwnDir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Unmounts and unlinks a namespace podnet made, in a directory nobody else
 * can write. A symlink in its place is refused (it could point at another
 * namespace's mount); an empty file that is not a namespace (a mount point
 * whose setup died before mounting, or whose mount is gone) is unlinked;
 * anything else is not podnet's and is refused.
 */
async function removeNamespace(path: string): Promise<void> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) throw new UnsafePathError(path, 'is a symbolic link');
  checkPrivateDir(dirname(path));
  let ns: NetworkNamespace;
  try {
    ns = await NetworkNamespace.open(path);
  } catch (err) {
    if (!(err instanceof NotANamespaceError)) throw err;
    if (!st.isFile() || st.size !== 0)
      throw new UnsafePathError(path, 'is neither a namespace nor an empty mount point');
    await unlink(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
    return;
  }
  await ns.remove();
}

/** What each kind of helper's command line looks like, so a planted pid is never signalled. */
const HELPER_ARGV: Record<HelperProcess['kind'], (argv: string[]) => boolean> = {
  slirp4netns: (argv) => basename(argv[0] ?? '') === 'slirp4netns',
  pasta: (argv) => /^(pasta|passt)(\.avx2)?$/.test(basename(argv[0] ?? '')),
  keeper: (argv) => argv.some((a) => /\/keeper-main\.[jt]s$/.test(a)),
  userns: (argv) => basename(argv[0] ?? '') === USERNS_HELPER,
  forwarder: (argv) => argv.some((a) => /\/forwarder-main\.[jt]s$/.test(a)),
};

/**
 * Stops helper processes, keeper first (it stops its engines itself). A
 * helper is signalled only while its pid, start time and command line all
 * match the journal; one that cannot be checked is an error, not a guess.
 */
async function stopHelpers(
  helpers: readonly HelperProcess[],
  errors: unknown[],
): Promise<number[]> {
  const signalled: number[] = [];
  const ordered = [...helpers].sort(
    (a, b) => Number(b.kind === 'keeper') - Number(a.kind === 'keeper'),
  );
  for (const helper of ordered) {
    const status = processStatus(helper);
    if (status === 'dead') continue;
    const argv = status === 'alive' ? processArgv(helper.pid) : undefined;
    if (argv === undefined) {
      errors.push(
        new PodnetError(
          'ERR_PODNET_TEARDOWN',
          `cannot tell whether ${helper.kind} process ${helper.pid} still runs`,
        ),
      );
      continue;
    }
    if (!HELPER_ARGV[helper.kind](argv)) continue; // another program now holds that identity
    try {
      if (await terminateProcess(helper)) signalled.push(helper.pid);
    } catch (err) {
      errors.push(err);
    }
  }
  return signalled;
}

/** Whether a namespace exists at `path`: 'unknown' unless the answer is definite. */
export async function namespaceStatus(path: string): Promise<'present' | 'gone' | 'unknown'> {
  if (path === '') return 'gone';
  try {
    (await NetworkNamespace.open(path)).close();
    return 'present';
  } catch (err) {
    if (err instanceof NotANamespaceError) return 'gone';
    if (isPodnetError(err) && err.code === 'ENOENT') return 'gone';
    return 'unknown';
  }
}
