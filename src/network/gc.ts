// gc: finishing what dead containers left, trusting nothing. A container is
// dead only on a definite answer: a setup whose lock can be taken (its
// process is gone: the kernel dropped the lock), or a ready container whose
// namespace is gone (ENOENT, or no longer a namespace) or whose namespace
// helper is gone (no such pid, another start time). Any other answer (an
// EMFILE, an EACCES) keeps the container and goes into the report. Each
// container is examined under its own lock, so gc never races a setup or a
// teardown, and only what a journal names is ever removed: a namespace in
// the directory that no state names belongs to somebody else (podman names
// its namespaces cni-* too).
import { unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { bridgeNetworkOf } from '../bridge/index.js';
import {
  type CacheEntry,
  type CniNetworkList,
  normalizeResult,
  parseNetworkList,
  parseResult,
} from '../cni/index.js';
import { publish } from '../diagnostics.js';
import { checkPrivateDir } from '../fsafe.js';
import { checkPortMappings, expandPortMappings, type PortMapping } from '../ports.js';
import { processStatus } from '../process.js';
import { tryLock } from './lock.js';
import type { StateStore } from './state.js';
import type { ContainerState } from './types.js';
import { heldByProcess, namespaceStatus, type UndoContext, undo, undoPending } from './undo.js';

/** What {@link Networking.gc} did, and what it could not decide or do. */
export interface GcReport {
  /** Containers whose state was removed (crashed setups, namespaces gone). */
  removedStates: string[];
  /** Namespaces of those containers, unmounted and removed. */
  removedMounts: string[];
  /**
   * Attachments released: cached CNI attachments with no container, DELeted
   * (their IPAM leases freed), and the network of a running container's
   * connect or disconnect that died midway.
   */
  releasedAttachments: { network: string; containerId: string; ifName: string }[];
  /** Helper processes stopped. */
  killedPids: number[];
  /** Things gc kept or could not clean, each naming the container or file, with why. */
  errors: string[];
}

/** What gc needs from its Networking. */
export interface GcContext extends UndoContext {
  store: StateStore;
  /** Whether the CNI cache is ours to sweep (root's; a rootless gc leaves it). */
  sweepCniCache: boolean;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Runs gc; see {@link GcReport}. Throws UnsafePathError if the state dir is not the caller's. */
export async function collectGarbage(ctx: GcContext): Promise<GcReport> {
  const report: GcReport = {
    removedStates: [],
    removedMounts: [],
    releasedAttachments: [],
    killedPids: [],
    errors: [],
  };
  const { store } = ctx;
  store.check();
  const ids = await store.ids();
  for (const id of ids) await examine(ctx, id, report);

  if (ctx.sweepCniCache) {
    await sweepCache(ctx, new Set(ids), report).catch((err: unknown) => {
      report.errors.push(`CNI cache not swept: ${message(err)}`);
    });
  }

  // A write that crashed before its rename left a temp file; one being
  // written right now belongs to a live lock holder, so only take those
  // whose container's lock is free.
  for (const tmp of await store.tempFiles()) {
    const id = basename(tmp)
      .slice(1)
      .replace(/\.[0-9a-f]{12}\.tmp$/, '');
    const held = tryLockQuietly(store, id, report);
    if (!held) continue;
    await unlink(tmp).catch(() => undefined);
    held.release();
  }
  // A setup killed after taking its lock but before creating its state
  // left only the lock file: taking and releasing the lock removes it.
  for (const id of await store.lockedIds()) {
    if (ids.includes(id)) continue;
    tryLockQuietly(store, id, report)?.release();
  }
  publish('podnet:network:gc', report);
  return report;
}

function tryLockQuietly(
  store: StateStore,
  id: string,
  report: GcReport,
): ReturnType<typeof tryLock> {
  try {
    return tryLock(store.lockPathOf(id));
  } catch (err) {
    report.errors.push(`container '${id}' kept: cannot take its lock: ${message(err)}`);
    return undefined;
  }
}

async function examine(ctx: GcContext, id: string, report: GcReport): Promise<void> {
  // A lock held by someone else: a setup or teardown is running. Leave it.
  const held = tryLockQuietly(ctx.store, id, report);
  if (!held) return;
  try {
    let state: ContainerState | undefined;
    try {
      state = await ctx.store.read(id);
    } catch (err) {
      report.errors.push(`container '${id}' kept: ${message(err)}`);
      return;
    }
    if (state === undefined) return; // torn down meanwhile
    publish('podnet:network:gc:check', { id });
    const verdict = await liveness(state);
    if (verdict.status === 'alive') {
      if (state.adding) await finishConnect(ctx, state, report);
      return;
    }
    if (verdict.status === 'unknown') {
      report.errors.push(`container '${id}' kept: ${verdict.why}`);
      return;
    }
    try {
      report.killedPids.push(...(await undo(ctx, state)));
      report.removedStates.push(id);
      if (state.ownsNetns && !heldByProcess(state) && state.netnsPath !== '')
        report.removedMounts.push(state.netnsPath);
    } catch (err) {
      report.errors.push(`container '${id}': ${message(err)}`);
    }
  } finally {
    // Safe whatever became of the container: whoever locks next checks that
    // the file they locked is still the one at the path (see lock.ts).
    held.release();
  }
}

/**
 * A running container whose connect (or disconnect) died midway, its lock
 * free: the network in its journal's `adding` entry is undone, the rest of
 * the container left as it is.
 */
async function finishConnect(
  ctx: GcContext,
  state: ContainerState,
  report: GcReport,
): Promise<void> {
  const a = state.adding!;
  try {
    await undoPending(ctx, state, { deleteLink: true });
    delete state.adding;
    await ctx.store.write(state);
    report.releasedAttachments.push({ network: a.name, containerId: state.id, ifName: a.ifName });
  } catch (err) {
    report.errors.push(`container '${state.id}': network '${a.name}': ${message(err)}`);
  }
}

/**
 * Whether a container (whose lock the caller holds) is alive. A state still
 * in 'setup' whose lock was free has lost its process: the kernel releases
 * the lock when the holder dies, whatever killed it.
 */
async function liveness(
  state: ContainerState,
): Promise<{ status: 'alive' | 'dead' } | { status: 'unknown'; why: string }> {
  if (state.phase === 'setup') return { status: 'dead' };
  if (heldByProcess(state)) {
    const helper = state.helpers.find((h) => h.kind === 'userns');
    const status = processStatus(helper);
    return status === 'unknown'
      ? { status, why: `cannot read /proc/${helper?.pid}/stat of its namespace helper` }
      : { status };
  }
  const ns = await namespaceStatus(state.netnsPath);
  if (ns === 'present') return { status: 'alive' };
  if (ns === 'gone') return { status: 'dead' };
  return {
    status: 'unknown',
    why: `cannot tell whether its namespace '${state.netnsPath}' exists`,
  };
}

/**
 * Cached CNI attachments of no container and whose namespace is definitely
 * gone (after a reboot, say): DEL frees their leases and rules. The cache
 * may be shared with podman, so an attachment whose namespace still exists
 * is never touched; an ID that has a podnet state is examined above instead.
 */
async function sweepCache(ctx: GcContext, ids: Set<string>, report: GcReport): Promise<void> {
  try {
    checkPrivateDir(ctx.cni.cache.dir);
  } catch (err) {
    report.errors.push(`CNI cache not swept: ${message(err)}`);
    return;
  }
  for (const cached of await ctx.cni.cachedAttachments()) {
    if (ids.has(cached.containerId)) continue;
    if ((await namespaceStatus(cached.netns)) !== 'gone') continue;
    const held = tryLockQuietly(ctx.store, cached.containerId, report);
    if (!held) continue;
    try {
      // A setup of this ID may have begun since the list was made.
      if ((await ctx.store.read(cached.containerId).catch(() => 'bad')) !== undefined) continue;
      const entry = await ctx.cni.cache.read(cached.network, cached.containerId, cached.ifName);
      if (!entry?.config) throw new Error('it holds no config');
      const list = parseNetworkList(entry.config, cached.path);
      if (entry.driver === 'native') {
        await detachCachedNative(ctx, entry, list);
      } else {
        // The recorded namespace is gone; an empty CNI_NETNS keeps plugins off
        // whatever may appear at that path later.
        await ctx.cni.del(list, {
          containerId: cached.containerId,
          netns: '',
          ifName: cached.ifName,
          args: cached.args,
          capabilityArgs: cached.capabilityArgs,
        });
      }
      report.releasedAttachments.push({
        network: cached.network,
        containerId: cached.containerId,
        ifName: cached.ifName,
      });
    } catch (err) {
      report.errors.push(`cached attachment '${cached.path}': ${message(err)}`);
    } finally {
      held.release();
    }
  }
}

/**
 * The native driver's undo of a cached attachment whose namespace is gone
 * (the veth went with it): its leases and firewall elements. The entry is
 * untrusted: its ports are checked as a caller's would be, its result
 * parsed in its list's version.
 */
async function detachCachedNative(
  ctx: GcContext,
  entry: CacheEntry,
  list: CniNetworkList,
): Promise<void> {
  const network = bridgeNetworkOf(list);
  if ('unsupported' in network)
    throw new Error(`its network is not one the native driver serves: ${network.unsupported}`);
  const raw = entry.capabilityArgs['portMappings'];
  // checkPortMappings checks each field of what it is given, whatever its type says.
  const ports = Array.isArray(raw)
    ? expandPortMappings(checkPortMappings(raw as PortMapping[]))
    : [];
  const addresses =
    entry.result === undefined
      ? []
      : normalizeResult(parseResult(entry.result, list.cniVersion)).ips.map((ip) => ip.address);
  await ctx.bridge.detach({
    network,
    containerId: entry.containerId,
    ifName: entry.ifName,
    addresses,
    ports,
  });
}
