// A container's network, end to end: what libpod's networking_linux.go does
// for podman. Setup makes (or joins) the namespace and attaches the CNI
// networks, undoing everything in reverse if any step fails; the state file
// is written before anything is made, so a crash at any point leaves state
// that gc can finish.
import { randomUUID } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';
import {
  type CniAttachment,
  type CniNetworkList,
  CniRuntime,
  parseNetworkList,
} from '../cni/index.js';
import { publish } from '../diagnostics.js';
import { AbortError, InvalidArgumentError, isPodnetError, PodnetError } from '../errors.js';
import { defaultNetnsDir, NetworkNamespace } from '../netns/index.js';
import { processAlive, processIdentity, terminateProcess } from '../process.js';
import {
  checkRootlessPorts,
  findExecutable,
  type Pasta,
  parsePastaOptions,
  parseSlirp4netnsOptions,
  pastaPortSpec,
  type RootlessEngines,
  type Slirp4netns,
  startKeeper,
  startPasta,
  startSlirp4netns,
  stopEngines,
  UserNamespace,
} from '../rootless/index.js';
import { buildNetworkSettings } from './inspect.js';
import { checkContainerId, currentOwner, StateStore } from './state.js';
import { summarizeStats } from './stats.js';
import type {
  AttachedNetwork,
  ContainerState,
  ContainerStats,
  HelperProcess,
  NetworkMode,
  NetworkSettings,
  PortMapping,
  SetupOptions,
} from './types.js';

/** Options of {@link Networking}. */
export interface NetworkingOptions {
  /** The CNI runtime (default: `new CniRuntime()`, the system's dirs). */
  cni?: CniRuntime;
  /** Network used when a setup names none (default 'podman': the embedded default). */
  defaultNetwork?: string;
  /** Where state files live (default {@link defaultStateDir}). */
  stateDir?: string;
  /** Where namespaces are mounted (default /run/netns, or $XDG_RUNTIME_DIR/netns). */
  netnsDir?: string;
  /**
   * Run rootless engines (slirp4netns, the forwarder) in a detached keeper
   * process instead of this one: for callers that exit right after setup,
   * as `podnet up` does. Default false: this process owns them.
   */
  keeper?: boolean;
  /**
   * Rootless setups (default: when not running as root). A rootless
   * container's namespaces are a user namespace and a network namespace
   * held by a UserNamespace helper process instead of a mount; its modes
   * are 'pasta', 'slirp4netns' and 'none', and the default mode is pasta
   * when installed, else slirp4netns (podman 5's choice).
   */
  rootless?: boolean;
}

/** What {@link Networking.gc} removed. */
export interface GcReport {
  /** Containers whose state was removed (crashed setups, namespaces gone). */
  removedStates: string[];
  /** Namespace mounts no state named, unmounted. */
  removedMounts: string[];
  /** Cached CNI attachments with no container, DELeted (their IPAM leases freed). */
  releasedAttachments: { network: string; containerId: string; ifName: string }[];
  /** Helper processes stopped. */
  killedPids: number[];
  /** Things gc could not clean, with why. */
  errors: string[];
}

/** No state exists for a container ID. */
export class NoSuchContainerError extends PodnetError {
  constructor(id: string, dir: string) {
    super('ERR_PODNET_NO_SUCH_CONTAINER', `no container '${id}' in '${dir}'`);
  }
}

const MAC_PATTERN = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

function checkPortMappings(list: readonly PortMapping[]): PortMapping[] {
  return list.map((m, i) => {
    const what = `portMappings[${i}]`;
    const range = m.range ?? 1;
    for (const [k, val] of [
      ['hostPort', m.hostPort],
      ['containerPort', m.containerPort],
    ] as const) {
      if (!Number.isInteger(val) || val < 1 || val + range - 1 > 65535) {
        throw new InvalidArgumentError(
          `${what}.${k} must be a port from 1 to 65535 (with its range), not ${val}`,
        );
      }
    }
    if (!Number.isInteger(range) || range < 1)
      throw new InvalidArgumentError(`${what}.range must be a positive integer`);
    if (m.protocol !== undefined && m.protocol !== 'tcp' && m.protocol !== 'udp') {
      throw new InvalidArgumentError(
        `${what}.protocol must be tcp or udp, not ${String(m.protocol)}`,
      );
    }
    if (m.hostIP && !isIP(m.hostIP))
      throw new InvalidArgumentError(`${what}.hostIP '${m.hostIP}' is not an IP address`);
    return { ...m };
  });
}

function checkMode(mode: unknown): NetworkMode {
  if (mode === 'bridge' || mode === 'none' || mode === 'slirp4netns' || mode === 'pasta')
    return mode;
  if (typeof mode === 'object' && mode !== null) {
    const keys = Object.keys(mode);
    const m = mode as Record<string, unknown>;
    if (keys.length === 1 && Number.isInteger(m['pid']) && (m['pid'] as number) > 0)
      return { pid: m['pid'] as number };
    if (keys.length === 1 && typeof m['path'] === 'string' && m['path'] !== '')
      return { path: m['path'] };
    if (keys.length === 1 && typeof m['container'] === 'string')
      return { container: checkContainerId(m['container']) };
  }
  throw new InvalidArgumentError(
    `mode must be 'bridge', 'none', 'slirp4netns', 'pasta', { pid }, { path } or { container }, not ${JSON.stringify(mode)}`,
  );
}

/** CNI's portMappings capability entries, ranges expanded. */
function cniPortMappings(list: readonly PortMapping[]): Record<string, unknown>[] {
  return list.flatMap((m) =>
    Array.from({ length: m.range ?? 1 }, (_, i) => ({
      hostPort: m.hostPort + i,
      containerPort: m.containerPort + i,
      protocol: m.protocol ?? 'tcp',
      hostIP: m.hostIP ?? '',
    })),
  );
}

function throwIfAborted(signal: AbortSignal | undefined, id: string): void {
  if (signal?.aborted)
    throw new AbortError(`setting up the network of container '${id}'`, { cause: signal.reason });
}

/**
 * Stops helper processes, keeper first (it stops its engines itself):
 * SIGTERM, then SIGKILL to its process group if it has not ended within 3 s.
 * A helper whose pid and start time no longer match is left alone: the pid
 * may belong to another process now. Returns the pids signalled.
 */
async function stopHelpers(helpers: readonly HelperProcess[]): Promise<number[]> {
  const signalled: number[] = [];
  const ordered = [...helpers].sort(
    (a, b) => Number(b.kind === 'keeper') - Number(a.kind === 'keeper'),
  );
  for (const helper of ordered) {
    if (await terminateProcess(helper)) signalled.push(helper.pid);
  }
  return signalled;
}

/** Attaches the cleanup errors to the error being thrown, keeping it the original. */
function withCleanupErrors(err: unknown, cleanup: unknown[]): unknown {
  if (cleanup.length && typeof err === 'object' && err !== null) {
    Object.defineProperty(err, 'cleanupErrors', {
      value: cleanup,
      enumerable: true,
      configurable: true,
    });
  }
  return err;
}

/** Inode numbers of the network namespaces some process is in (to spare namespaces in use). */
function namespacesInUse(): Set<string> {
  const inUse = new Set<string>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      inUse.add(readlinkSync(`/proc/${pid}/ns/net`));
    } catch {
      // The process exited, or is not ours to look at.
    }
  }
  return inUse;
}

/**
 * A container's network as set up (or loaded from state): inspect it, read
 * its statistics, tear it down.
 */
export class Attachment implements AsyncDisposable {
  readonly #net: Networking;
  #state: ContainerState;
  #netns: NetworkNamespace | undefined;
  #engines: RootlessEngines | undefined;
  // The helper holding a rootless namespace this process set up (ended by teardown).
  #userns: UserNamespace | undefined;
  // A helper joined to reach a rootless namespace set up elsewhere (ended by close).
  #joined: UserNamespace | undefined;

  /** @internal Made by Networking.setup/load. */
  constructor(
    net: Networking,
    state: ContainerState,
    netns: NetworkNamespace | undefined,
    engines?: RootlessEngines,
    userns?: UserNamespace,
  ) {
    this.#net = net;
    this.#state = state;
    this.#netns = netns;
    this.#engines = engines;
    this.#userns = userns;
  }

  /**
   * The slirp4netns process of a 'slirp4netns' container set up by this
   * process: its `exited` promise and 'exit' event say when it dies.
   */
  get slirp4netns(): Slirp4netns | undefined {
    return this.#engines?.slirp;
  }

  /** The pasta process of a 'pasta' container set up by this process. */
  get pasta(): Pasta | undefined {
    return this.#engines?.pasta;
  }

  /** Container ID. */
  get id(): string {
    return this.#state.id;
  }

  /** The state as kept on disk. */
  get state(): ContainerState {
    return this.#state;
  }

  /** The container's namespace (undefined once closed, or when it is gone). */
  get netns(): NetworkNamespace | undefined {
    return this.#netns;
  }

  /** The CNI results, one per network, in the networks' order. */
  get results(): AttachedNetwork[] {
    return this.#state.networks;
  }

  /** Docker-compatible NetworkSettings, as podman's inspect shows them. */
  inspect(): NetworkSettings {
    return buildNetworkSettings(this.#state);
  }

  /** Counters of every non-loopback interface in the namespace, and their sum. */
  async stats(): Promise<ContainerStats> {
    this.#netns ??= await this.#open();
    return summarizeStats(await this.#netns.links());
  }

  // Only a process inside an unprivileged user's user namespace may open
  // sockets in its network namespace: join one there (root can enter it).
  async #open(): Promise<NetworkNamespace> {
    const helper = this.#state.helpers.find((h) => h.kind === 'userns');
    if (helper === undefined || process.geteuid?.() === 0)
      return NetworkNamespace.open(this.#state.netnsPath);
    if (!processAlive(helper)) {
      throw new PodnetError(
        'ERR_PODNET_NAMESPACE_GONE',
        `the namespaces of container '${this.#state.id}' are gone (their helper exited)`,
      );
    }
    this.#joined = await UserNamespace.join(helper.pid);
    return this.#joined.netns;
  }

  /**
   * CNI DEL of every network (all attempted, in reverse), then the namespace
   * unmounted (if podnet made it) even when a DEL failed, then the state
   * deleted. Throws the DEL errors afterwards. Running it twice is fine.
   */
  async teardown(): Promise<void> {
    const engines = this.#engines;
    this.#engines = undefined;
    // The in-process engines stop first; _teardown then signals any helper
    // another process started.
    const stopped = engines
      ? await stopEngines(engines).then(
          () => undefined,
          (e: unknown) => e,
        )
      : undefined;
    this.close();
    const userns = this.#userns;
    this.#userns = undefined;
    await userns?.close();
    await this.#net._teardown(this.#state);
    if (stopped !== undefined) throw stopped;
  }

  /**
   * Releases podnet's fds for the namespace; it stays mounted (podman's
   * closeNetNS). A rootless namespace this process set up stays as long as
   * this process runs, or until teardown.
   */
  close(): void {
    this.#netns?.close();
    this.#netns = undefined;
    void this.#joined?.close();
    this.#joined = undefined;
  }

  /** Tears the network down. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.teardown();
  }
}

/**
 * Sets up and tears down containers' networks, keeping their state in
 * stateDir so another process can load, inspect and tear them down.
 */
export class Networking {
  /** The CNI runtime in use. */
  readonly cni: CniRuntime;
  /** The state files. */
  readonly store: StateStore;
  /** Network used when a setup names none. */
  readonly defaultNetwork: string;
  /** Where namespaces are mounted. */
  readonly netnsDir: string;
  /** Whether rootless engines run in a keeper process. */
  readonly keeper: boolean;
  /** Whether setups are rootless (see {@link NetworkingOptions.rootless}). */
  readonly rootless: boolean;

  constructor(options: NetworkingOptions = {}) {
    this.cni = options.cni ?? new CniRuntime();
    this.store = new StateStore(options.stateDir);
    this.defaultNetwork = options.defaultNetwork ?? 'podman';
    this.netnsDir = options.netnsDir ?? defaultNetnsDir();
    this.keeper = options.keeper ?? false;
    this.rootless = options.rootless ?? process.geteuid?.() !== 0;
  }

  /**
   * Sets up a container's network. If any step fails, everything done before
   * it is undone in reverse and the original error is thrown, with the
   * errors of that cleanup (if any) in its `cleanupErrors`.
   */
  async setup(options: SetupOptions): Promise<Attachment> {
    const id = checkContainerId(options.id);
    if (typeof options.name !== 'string' || options.name === '')
      throw new InvalidArgumentError('name must be a non-empty string');
    const mode = checkMode(
      options.mode ?? (this.rootless ? await rootlessDefaultMode() : 'bridge'),
    );
    if (this.rootless && mode !== 'pasta' && mode !== 'slirp4netns' && mode !== 'none') {
      throw new PodnetError(
        'ERR_PODNET_NEEDS_ROOT',
        `mode ${JSON.stringify(mode)} needs root; a rootless setup takes 'pasta', 'slirp4netns' or 'none'`,
      );
    }
    // Rootless options are parsed before anything is made: a bad one changes nothing.
    const slirp =
      mode === 'slirp4netns' ? parseSlirp4netnsOptions(options.modeOptions ?? []) : undefined;
    const pasta = mode === 'pasta' ? parsePastaOptions(options.modeOptions ?? []) : undefined;
    const rootless = slirp !== undefined || pasta !== undefined;
    if (!rootless && options.modeOptions?.length) {
      throw new InvalidArgumentError(
        `mode '${typeof mode === 'string' ? mode : Object.keys(mode)[0]}' takes no options, got ${options.modeOptions.join(',')}`,
      );
    }
    const portMappings = checkPortMappings(options.portMappings ?? []);
    const ip = options.requestedIP ?? options.staticIP;
    const mac = options.requestedMAC ?? options.staticMAC;
    if (ip !== undefined && !isIP(ip))
      throw new InvalidArgumentError(`static IP '${ip}' is not an IP address`);
    if (mac !== undefined && !MAC_PATTERN.test(mac))
      throw new InvalidArgumentError(`static MAC '${mac}' is not a MAC address`);
    const joinsCni = mode === 'bridge' || (typeof mode === 'object' && 'pid' in mode);
    const requested = options.networks ?? [];
    if (requested.some((n) => typeof n !== 'string' || n === ''))
      throw new InvalidArgumentError('network names must be non-empty strings');
    if (new Set(requested).size !== requested.length)
      throw new InvalidArgumentError(`a network is named twice: ${requested.join(', ')}`);
    if (!joinsCni && (requested.length || ip || mac || (!rootless && portMappings.length))) {
      throw new InvalidArgumentError(
        `networks and static addresses need mode 'bridge' or { pid }; ports also work with 'slirp4netns' and 'pasta'`,
      );
    }
    // pasta checks its port specs itself; turn a bad one into an error now.
    if (pasta) for (const p of portMappings) pastaPortSpec(p);
    if (slirp) checkRootlessPorts(portMappings, slirp.portHandler);
    // Static addresses go to the first network; with none named, that is the default.
    const names = joinsCni ? (requested.length ? requested : [this.defaultNetwork]) : [];
    // Load every config before anything is made: a missing network changes nothing.
    const lists = await Promise.all(names.map((n) => this.cni.loadNetwork(n)));
    if (await this.store.read(id)) {
      throw new PodnetError(
        'ERR_PODNET_CONTAINER_EXISTS',
        `container '${id}' already has a network (state in '${this.store.dir}')`,
      );
    }

    const ownNamespace =
      mode === 'bridge' ||
      mode === 'none' ||
      mode === 'slirp4netns' ||
      mode === 'pasta' ||
      (typeof mode === 'object' && 'pid' in mode);
    const state: ContainerState = {
      version: 1,
      phase: 'setup',
      owner: currentOwner(),
      id,
      name: options.name,
      ...(options.pod === undefined ? {} : { pod: options.pod }),
      mode,
      // A rootless namespace's path is known once its helper runs.
      netnsPath: this.rootless
        ? ''
        : ownNamespace
          ? join(this.netnsDir, `cni-${randomUUID()}`)
          : await this.#joinedPath(mode),
      ownsNetns: ownNamespace,
      networksRequested: requested.length > 0,
      networks: [],
      portMappings,
      exposedPorts: [...(options.exposedPorts ?? [])],
      ...(options.staticIP === undefined ? {} : { staticIP: options.staticIP }),
      ...(options.staticMAC === undefined ? {} : { staticMAC: options.staticMAC }),
      ...(options.modeOptions?.length ? { modeOptions: [...options.modeOptions] } : {}),
      helpers: [],
      created: new Date().toISOString(),
    };
    const step = (phase: string): void =>
      publish('podnet:network:setup', { id, phase, netns: state.netnsPath });
    await this.store.write(state);
    step('state');

    let netns: NetworkNamespace | undefined;
    let userns: UserNamespace | undefined;
    let engines: RootlessEngines | undefined;
    try {
      throwIfAborted(options.signal, id);
      const where = { dir: this.netnsDir, name: state.netnsPath.slice(this.netnsDir.length + 1) };
      // An unprivileged user's namespaces live as long as the process holding
      // them: for a caller that exits (keeper), a keeper makes and holds them.
      const kept = this.rootless && this.keeper;
      if (kept) {
        // Below, with the engine.
      } else if (this.rootless) {
        userns = await UserNamespace.create(options.signal ? { signal: options.signal } : {});
        netns = userns.netns;
        state.netnsPath = netns.path;
        state.helpers.push({ kind: 'userns', ...processIdentity(userns.pid) });
        await this.store.write(state);
      } else if (mode === 'bridge' || mode === 'none' || rootless) {
        netns = await NetworkNamespace.create(where);
      } else if (typeof mode === 'object' && 'pid' in mode)
        netns = await NetworkNamespace.fromPid(mode.pid, where);
      else netns = await NetworkNamespace.open(state.netnsPath);
      step('netns');
      if (netns && (mode === 'none' || rootless)) await netns.setLinkUp('lo');
      if (rootless || kept) {
        const engine = slirp ? 'slirp4netns' : pasta ? 'pasta' : 'none';
        if (this.keeper) {
          const keeper = await startKeeper({
            engine,
            netns: netns?.path ?? 'userns',
            options: options.modeOptions ?? [],
            ports: portMappings,
          });
          state.helpers.push({ kind: 'keeper', ...processIdentity(keeper.pid) });
          if (engine !== 'none' && keeper.enginePid !== undefined) {
            state.helpers.push({
              kind: engine,
              ...processIdentity(keeper.enginePid),
              ...(keeper.engineDir ? { dir: keeper.engineDir } : {}),
            });
          }
          if (keeper.usernsPid !== undefined) {
            state.helpers.push({ kind: 'userns', ...processIdentity(keeper.usernsPid) });
            state.netnsPath = `/proc/${keeper.usernsPid}/ns/net`;
          }
        } else if (engine !== 'none') {
          engines = slirp
            ? await startSlirp4netns(netns!, slirp, portMappings, options.signal, userns?.pid)
            : await startPasta(
                netns!,
                options.modeOptions ?? [],
                portMappings,
                options.signal,
                userns?.pid,
              );
          const started = (engines.slirp ?? engines.pasta)!;
          state.helpers.push({
            kind: engine,
            ...processIdentity(started.pid),
            dir: dirname(started.logPath),
          });
        }
        // Recorded at once: if this process dies before the setup completes,
        // gc must find and stop them (a keeper, or pasta, outlives it).
        await this.store.write(state);
        step(engine);
      }

      for (const [i, list] of lists.entries()) {
        throwIfAborted(options.signal, id);
        const attachment = this.#attachment(state, i, ip, mac);
        const result = await this.cni.add(
          list,
          attachment,
          options.signal ? { signal: options.signal } : {},
        );
        state.networks.push({
          name: list.name,
          ifName: attachment.ifName,
          config: list.bytes,
          result,
        });
        step(`network:${list.name}`);
      }
      throwIfAborted(options.signal, id);
      const { owner: _owner, ...ready } = state;
      const done: ContainerState = { ...ready, phase: 'ready' };
      await this.store.write(done);
      step('ready');
      return new Attachment(this, done, netns, engines, userns);
    } catch (err) {
      const cleanup: unknown[] = [];
      if (engines) await stopEngines(engines).catch((e: unknown) => cleanup.push(e));
      await stopHelpers(state.helpers).catch((e: unknown) => cleanup.push(e));
      netns?.close();
      await userns?.close().catch((e: unknown) => cleanup.push(e));
      // Every network ADD was attempted for, the failed one included: its
      // own ADD already rolled back, but a DEL is harmless and cheap.
      const attempted = lists.slice(0, state.networks.length + 1);
      for (let i = attempted.length - 1; i >= 0; i--) {
        const attachment = this.#attachment(state, i, ip, mac);
        await this.cni.del(attempted[i]!, attachment).catch((e: unknown) => cleanup.push(e));
      }
      if (netns && state.ownsNetns && !heldByProcess(state))
        await netns.remove().catch((e: unknown) => cleanup.push(e));
      await this.store.remove(id).catch((e: unknown) => cleanup.push(e));
      throw withCleanupErrors(err, cleanup);
    }
  }

  /** Loads a container's network from its state (written by any process). */
  async load(id: string): Promise<Attachment> {
    const state = await this.store.read(checkContainerId(id));
    if (!state) throw new NoSuchContainerError(id, this.store.dir);
    // A rootless container's namespace is reached through its helper, later
    // and only if needed (stats): joining costs a process start.
    if (heldByProcess(state)) return new Attachment(this, state, undefined);
    const netns = await NetworkNamespace.open(state.netnsPath).catch(() => undefined);
    return new Attachment(this, state, netns);
  }

  /** Every container with state (ready or still in setup). */
  async list(): Promise<ContainerState[]> {
    return (await this.store.list()).states;
  }

  /**
   * Removes what dead containers left: state of crashed setups and of
   * containers whose namespace is gone; `cni-*` mounts in netnsDir that no
   * state names and no process is in; cached CNI attachments of no
   * container whose namespace is gone (DEL from the cache, which frees
   * host-local IPAM leases, as after a reboot); helper processes of removed
   * containers. A setup still running in another process is left alone.
   */
  async gc(): Promise<GcReport> {
    const report: GcReport = {
      removedStates: [],
      removedMounts: [],
      releasedAttachments: [],
      killedPids: [],
      errors: [],
    };
    const { states, bad } = await this.store.list();
    for (const b of bad) report.errors.push(b.message);
    const kept = new Set<string>();
    for (const state of states) {
      const crashed = state.phase === 'setup' && !processAlive(state.owner);
      const running = state.phase === 'setup' && !crashed;
      const gone =
        state.phase === 'ready' &&
        (heldByProcess(state)
          ? !processAlive(state.helpers.find((h) => h.kind === 'userns'))
          : !(await isNamespace(state.netnsPath)));
      if (running || (!crashed && !gone)) {
        kept.add(state.id);
        continue;
      }
      try {
        report.killedPids.push(...(await this._teardown(state)));
        report.removedStates.push(state.id);
      } catch (err) {
        kept.add(state.id);
        report.errors.push(`container '${state.id}': ${(err as Error).message}`);
      }
    }
    const named = new Set(states.filter((s) => kept.has(s.id)).map((s) => s.netnsPath));
    const inUse = namespacesInUse();
    for (const entry of await NetworkNamespace.list(this.netnsDir)) {
      if (!entry.name.startsWith('cni-') || named.has(entry.path)) continue;
      try {
        const ns = await NetworkNamespace.open(entry.path);
        if (inUse.has(`net:[${ns.inode}]`)) {
          ns.close();
          continue;
        }
        await ns.remove();
        report.removedMounts.push(entry.path);
      } catch (err) {
        report.errors.push((err as Error).message);
      }
    }
    // Rootless containers have no CNI attachments (and /var/lib/cni is root's).
    const cachedList = this.rootless ? [] : await this.cni.cachedAttachments();
    for (const cached of cachedList) {
      // Only attachments whose namespace is gone: one that still exists may
      // belong to another CNI user (podman) sharing /var/lib/cni.
      if (kept.has(cached.containerId) || (await isNamespace(cached.netns))) continue;
      try {
        const entry = await this.cni.cache.read(cached.network, cached.containerId, cached.ifName);
        if (!entry?.config)
          throw new PodnetError('ERR_PODNET_GC', `cache entry '${cached.path}' holds no config`);
        const list = parseNetworkList(entry.config, cached.path);
        await this.cni.del(list, {
          containerId: cached.containerId,
          netns: cached.netns,
          ifName: cached.ifName,
          args: cached.args,
          capabilityArgs: cached.capabilityArgs,
        });
        report.releasedAttachments.push({
          network: cached.network,
          containerId: cached.containerId,
          ifName: cached.ifName,
        });
      } catch (err) {
        report.errors.push(`cached attachment '${cached.path}': ${(err as Error).message}`);
      }
    }
    for (const tmp of await this.store.tempFiles()) {
      await import('node:fs/promises').then((fs) => fs.unlink(tmp)).catch(() => undefined);
    }
    publish('podnet:network:gc', report);
    return report;
  }

  /**
   * @internal Tears down from state: stops helpers, DELs every network (or,
   * for a crashed setup, every cached attachment of the container), removes
   * an owned namespace, deletes the state. Returns the pids it stopped.
   */
  async _teardown(state: ContainerState): Promise<number[]> {
    const errors: unknown[] = [];
    const killed: number[] = [];
    try {
      killed.push(...(await stopHelpers(state.helpers)));
    } catch (err) {
      errors.push(err);
    }
    // An engine that stopped with its owner dead left its private directory.
    for (const h of state.helpers) {
      if (h.dir && /^podnet-(slirp4netns|pasta)-[^/]+$/.test(basename(h.dir)) && !processAlive(h))
        await rm(h.dir, { recursive: true, force: true }).catch((e: unknown) => errors.push(e));
    }
    const targets =
      state.phase === 'ready'
        ? state.networks.map((n, index) => ({
            list: parseNetworkList(n.config, this.store.pathOf(state.id)),
            index,
          }))
        : await this.#cachedTargets(state.id);
    // DEL gets what ADD got (libcni passes the same RuntimeConf): portmap,
    // for one, finds its rules through the portMappings capability.
    for (const t of targets.reverse()) {
      const attachment = this.#attachment(state, t.index, state.staticIP, state.staticMAC);
      await this.cni.del(t.list, attachment).catch((e: unknown) => errors.push(e));
    }
    // A namespace held by a helper went with it (stopped above).
    if (state.ownsNetns && !heldByProcess(state) && state.netnsPath !== '') {
      const ns = await NetworkNamespace.open(state.netnsPath).catch(() => undefined);
      if (ns) await ns.remove().catch((e: unknown) => errors.push(e));
      else if (await isNamespace(state.netnsPath))
        errors.push(new PodnetError('ERR_PODNET_TEARDOWN', `cannot open '${state.netnsPath}'`));
      else
        await import('node:fs/promises')
          .then((fs) => fs.unlink(state.netnsPath))
          .catch(() => undefined);
    }
    await this.store.remove(state.id);
    publish('podnet:network:teardown', { id: state.id, errors: errors.length });
    if (errors.length) {
      throw new PodnetError(
        'ERR_PODNET_TEARDOWN',
        `tearing down container '${state.id}': ${errors.map((e) => (e as Error).message).join('; ')}`,
        {
          cause: errors[0],
        },
      );
    }
    return killed;
  }

  /** A crashed setup's networks, from the CNI cache (its state never got them). */
  async #cachedTargets(id: string): Promise<{ list: CniNetworkList; index: number }[]> {
    const out: { list: CniNetworkList; index: number }[] = [];
    for (const c of await this.cni.cachedAttachments({ containerId: id })) {
      const entry = await this.cni.cache.read(c.network, c.containerId, c.ifName);
      const index = Number(/^eth(\d+)$/.exec(c.ifName)?.[1]);
      if (entry?.config && Number.isInteger(index))
        out.push({ list: parseNetworkList(entry.config, c.path), index });
    }
    return out.sort((a, b) => a.index - b.index);
  }

  /** Follows { container } (and { path }) to the namespace path, refusing cycles. */
  async #joinedPath(mode: NetworkMode): Promise<string> {
    const seen = new Set<string>();
    let m = mode;
    while (typeof m === 'object' && 'container' in m) {
      if (seen.has(m.container)) {
        throw new PodnetError(
          'ERR_PODNET_NAMESPACE_CYCLE',
          `containers share namespaces in a cycle: ${[...seen, m.container].join(' -> ')}`,
        );
      }
      seen.add(m.container);
      const owner = await this.store.read(m.container);
      if (!owner) throw new NoSuchContainerError(m.container, this.store.dir);
      if (typeof owner.mode === 'object' && 'container' in owner.mode) m = owner.mode;
      else return owner.netnsPath;
    }
    if (typeof m === 'object' && 'path' in m) return m.path;
    throw new InvalidArgumentError(`mode ${JSON.stringify(mode)} does not join a namespace`);
  }

  #args(
    state: ContainerState,
    ip: string | undefined,
    mac: string | undefined,
  ): [string, string][] {
    const pod = state.pod ?? state.name;
    const args: [string, string][] = [
      ['IgnoreUnknown', '1'],
      ['K8S_POD_NAMESPACE', pod],
      ['K8S_POD_NAME', pod],
      ['K8S_POD_INFRA_CONTAINER_ID', state.id],
    ];
    if (ip !== undefined) args.push(['IP', ip]);
    if (mac !== undefined) args.push(['MAC', mac]);
    return args;
  }

  #attachment(state: ContainerState, index: number, ip?: string, mac?: string): CniAttachment {
    // podman's rules: ports and static addresses go to the first network only.
    const first = index === 0;
    const capabilityArgs: Record<string, unknown> = {};
    if (first && state.portMappings.length)
      capabilityArgs['portMappings'] = cniPortMappings(state.portMappings);
    if (first && ip !== undefined) capabilityArgs['ips'] = [ip];
    if (first && mac !== undefined) capabilityArgs['mac'] = mac;
    return {
      containerId: state.id,
      netns: state.netnsPath,
      ifName: `eth${index}`,
      args: this.#args(state, first ? ip : undefined, first ? mac : undefined),
      capabilityArgs,
    };
  }
}

/** Whether the container's namespace is held by a UserNamespace helper rather than a mount. */
function heldByProcess(state: ContainerState): boolean {
  return state.helpers.some((h) => h.kind === 'userns');
}

/** podman 5's rootless default: pasta when installed, else slirp4netns. */
async function rootlessDefaultMode(): Promise<NetworkMode> {
  return (await findExecutable('pasta')) ? 'pasta' : 'slirp4netns';
}

async function isNamespace(path: string): Promise<boolean> {
  if (!path) return false;
  try {
    (await NetworkNamespace.open(path)).close();
    return true;
  } catch (err) {
    if (isPodnetError(err)) return false;
    throw err;
  }
}
