// A container's network, end to end: what libpod's networking_linux.go does
// for podman, written the way netavark's setup is. A setup is first a plan
// (plan.ts: everything validated, every name decided, nothing touched),
// then executed step by step under the container's lock (lock.ts), with
// the state file as its journal: each step is recorded, fsynced, before it
// is taken. Rollback, teardown and gc all undo from that journal (undo.ts),
// so a crash at any point leaves exactly what the journal names.
import { dirname } from 'node:path';
import { BridgeDriver } from '../bridge/index.js';
import { type CniResult, CniRuntime, parseNetworkList } from '../cni/index.js';
import { checkTrace, publish, traced } from '../diagnostics.js';
import { AbortError, AggregatePodnetError, InvalidArgumentError } from '../errors.js';
import { checkPrivateDir, resolveDir } from '../fsafe.js';
import { defaultNetnsDir, NetworkNamespace } from '../netns/index.js';
import { processIdentity } from '../process.js';
import {
  type KeeperInfo,
  type RootlessEngines,
  startKeeper,
  startPasta,
  startSlirp4netns,
  stopEngines,
  UserNamespace,
} from '../rootless/index.js';
import { Attachment } from './attachment.js';
import { collectGarbage, type GcReport } from './gc.js';
import { type ContainerLock, lock } from './lock.js';
import {
  checkConnectable,
  type DriverChoice,
  NoSuchContainerError,
  NotConnectedError,
  type PlanContext,
  type PlannedNetwork,
  planConnect,
  planSetup,
  type SetupPlan,
} from './plan.js';
import { checkContainerId, StateStore } from './state.js';
import type {
  AttachedNetwork,
  ContainerState,
  PerNetworkOptions,
  SetupOptions,
  SetupTraceContext,
} from './types.js';
import {
  heldByProcess,
  nativePorts,
  reattachFirewall,
  sameAddresses,
  type UndoContext,
  undo,
  undoNetwork,
  undoPending,
} from './undo.js';

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
  /**
   * How long setup and teardown wait for another process working on the
   * same container ID (a setup in progress) before ERR_PODNET_CONTAINER_BUSY.
   * Default 60 s, the default deadline of one plugin call.
   */
  lockTimeoutMs?: number;
  /**
   * Which driver attaches bridge networks: 'native' (podnet's own: links
   * and addresses over netlink, leases in host-local's files, the firewall
   * in podnet's nftables table; a few milliseconds a setup, no process
   * started), 'cni' (the plugins), or 'auto', the default: native for the
   * embedded default network, the plugins for config lists users wrote.
   * With 'native', a list the driver cannot serve is refused
   * (ERR_PODNET_DRIVER_UNSUPPORTED).
   */
  driver?: DriverChoice;
}

function throwIfAborted(signal: AbortSignal | undefined, id: string): void {
  if (signal?.aborted)
    throw new AbortError(`setting up the network of container '${id}'`, { cause: signal.reason });
}

/**
 * Attaches the cleanup's failures, as one AggregatePodnetError, to the error
 * being thrown as its `cleanupError`, keeping that error the original.
 */
function withCleanupError(err: unknown, id: string, cleanup: unknown[]): unknown {
  if (cleanup.length && typeof err === 'object' && err !== null) {
    Object.defineProperty(err, 'cleanupError', {
      value: new AggregatePodnetError(
        'ERR_PODNET_TEARDOWN',
        `rolling back the setup of container '${id}'`,
        cleanup,
      ),
      enumerable: true,
      configurable: true,
    });
  }
  return err;
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
  /** Where namespaces are mounted (absolute, resolved once). */
  readonly netnsDir: string;
  /** Whether rootless engines run in a keeper process. */
  readonly keeper: boolean;
  /** Whether setups are rootless (see {@link NetworkingOptions.rootless}). */
  readonly rootless: boolean;
  /** Which driver attaches bridge networks (see {@link NetworkingOptions.driver}). */
  readonly driver: DriverChoice;
  // podnet's own bridge driver (its sockets open on first use).
  readonly #bridge: BridgeDriver;
  readonly #lockTimeoutMs: number;

  constructor(options: NetworkingOptions = {}) {
    this.cni = options.cni ?? new CniRuntime();
    this.defaultNetwork = options.defaultNetwork ?? 'podman';
    this.netnsDir = resolveDir(options.netnsDir ?? defaultNetnsDir());
    this.store = new StateStore(options.stateDir);
    this.keeper = options.keeper ?? false;
    this.rootless = options.rootless ?? process.geteuid?.() !== 0;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 60_000;
    const driver = options.driver ?? 'auto';
    if (driver !== 'native' && driver !== 'cni' && driver !== 'auto')
      throw new InvalidArgumentError(
        `driver must be 'native', 'cni' or 'auto', not '${String(driver)}'`,
      );
    this.driver = driver;
    this.#bridge = new BridgeDriver(this.cni.cache);
  }

  /**
   * Sets up a container's network. Nothing is touched until the whole
   * request has been validated. A second setup of an ID that has a network
   * (or one being set up) fails with ERR_PODNET_CONTAINER_EXISTS and
   * changes nothing. If any step fails, everything done is undone from the
   * journal and the original error is thrown; should that cleanup fail too,
   * its failures are in the error's `cleanupError` (ERR_PODNET_TEARDOWN).
   * Traced on the `podnet:network:setup` tracing channel, in the trace of
   * `options.traceparent` unless a subscriber gives it another.
   */
  async setup(options: SetupOptions): Promise<Attachment> {
    const context: SetupTraceContext = {
      id: options.id,
      name: options.name,
      ...checkTrace(options),
    };
    return traced('podnet:network:setup', context, () => this.#setup(options));
  }

  async #setup(options: SetupOptions): Promise<Attachment> {
    const plan = await planSetup(this.#context(), options);
    const { state } = plan;
    await this.store.prepare();
    // Plugins read and write the cache, and a namespace is mounted in the
    // netns dir: neither may be writable by anyone else.
    checkPrivateDir(this.cni.cache.dir);
    if (state.ownsNetns && !this.rootless) checkPrivateDir(this.netnsDir);
    const held = await lock(this.store.lockPathOf(state.id), state.id, this.#lockTimeoutMs);
    try {
      // Exclusive: whatever is there (even a file that does not validate)
      // is somebody's, and create says ERR_PODNET_CONTAINER_EXISTS.
      await this.store.create(state);
    } catch (err) {
      held.release();
      throw err;
    }
    publish('podnet:network:setup', { id: state.id, phase: 'state', netns: state.netnsPath });
    return this.#execute(plan, options.signal, held);
  }

  async #execute(
    plan: SetupPlan,
    signal: AbortSignal | undefined,
    held: ContainerLock,
  ): Promise<Attachment> {
    const { state } = plan;
    const id = state.id;
    const journal = (): Promise<void> => this.store.write(state);
    const step = (phase: string): void =>
      publish('podnet:network:setup', { id, phase, netns: state.netnsPath });
    const ports = state.portMappings;
    const modeOptions = state.modeOptions ?? [];
    let netns: NetworkNamespace | undefined;
    let userns: UserNamespace | undefined;
    let engines: RootlessEngines | undefined;
    let keeper: KeeperInfo | undefined;
    try {
      throwIfAborted(signal, id);
      const mode = state.mode;
      const where = { dir: this.netnsDir, name: state.netnsPath.slice(this.netnsDir.length + 1) };
      // An unprivileged user's namespaces live as long as the process holding
      // them: for a caller that exits (keeper), a keeper makes and holds them.
      const kept = this.rootless && this.keeper;
      if (kept) {
        // Below, with the engine.
      } else if (this.rootless) {
        userns = await UserNamespace.create(signal ? { signal } : {});
        netns = userns.netns;
        state.netnsPath = netns.path;
        state.helpers.push({ kind: 'userns', ...processIdentity(userns.pid) });
        await journal();
      } else if (mode === 'bridge' || mode === 'none' || plan.engine !== undefined) {
        netns = await NetworkNamespace.create(where);
      } else if (typeof mode === 'object' && 'pid' in mode)
        netns = await NetworkNamespace.fromPid(mode.pid, where);
      else netns = await NetworkNamespace.open(state.netnsPath);
      step('netns');
      // podman brings lo up in every mode: a process inside must reach 127.0.0.1.
      if (netns) await netns.setLinkUp('lo');
      if (plan.engine !== undefined) {
        const engine = plan.engine;
        if (this.keeper) {
          keeper = await startKeeper({
            engine,
            netns: netns?.path ?? 'userns',
            options: modeOptions,
            ports,
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
          engines = plan.slirp
            ? await startSlirp4netns(netns!, plan.slirp, ports, signal, userns?.pid)
            : await startPasta(netns!, modeOptions, ports, signal, userns?.pid);
          const started = (engines.slirp ?? engines.pasta)!;
          state.helpers.push({
            kind: engine,
            ...processIdentity(started.pid),
            dir: dirname(started.logPath),
          });
        }
        // Recorded at once: if this process dies before the setup completes,
        // gc must find and stop them (a keeper, or pasta, outlives it). A
        // keeper stops by itself if this process dies before confirming.
        await journal();
        keeper?.confirm();
        step(engine);
      }

      for (const n of plan.networks) {
        throwIfAborted(signal, id);
        await this.#addNetwork(state, n, netns, journal, signal);
        step(`network:${n.list.name}`);
      }
      throwIfAborted(signal, id);
      const { owner: _owner, ...ready } = state;
      const done: ContainerState = { ...ready, phase: 'ready' };
      await this.store.write(done);
      step('ready');
      held.release();
      return new Attachment((cid) => this.#teardownById(cid), {
        state: done,
        netns,
        owned: true,
        engines,
        userns,
      });
    } catch (err) {
      const cleanup: unknown[] = [];
      if (engines) await stopEngines(engines).catch((e: unknown) => cleanup.push(e));
      netns?.close();
      await userns?.close().catch((e: unknown) => cleanup.push(e));
      try {
        await undo(this.#context(), state);
      } catch (e) {
        // The journal stays, for teardown or gc to finish.
        cleanup.push(...(e instanceof AggregatePodnetError ? e.errors : [e]));
      } finally {
        held.release();
      }
      throw withCleanupError(err, id, cleanup);
    }
  }

  // One network's ADD, journalled as a setup's are: `adding` before (and,
  // for the plugins, before each of them), `networks` after.
  async #addNetwork(
    state: ContainerState,
    n: PlannedNetwork,
    netns: NetworkNamespace | undefined,
    journal: () => Promise<void>,
    signal: AbortSignal | undefined,
    onPlugin?: (plugin: number) => void,
  ): Promise<AttachedNetwork> {
    const id = state.id;
    const runtime = { ...n.runtime, netns: state.netnsPath };
    const adding: NonNullable<ContainerState['adding']> = {
      name: n.list.name,
      ifName: n.ifName,
      config: n.list.bytes,
      runtime,
      reached: -1,
      ...(n.native ? { driver: 'native' as const, hostIfName: n.native.hostIfName } : {}),
    };
    state.adding = adding;
    const result = n.native
      ? await this.#attachNative(state, n, runtime, netns!, journal)
      : await this.cni.add(
          n.list,
          {
            containerId: id,
            netns: runtime.netns,
            ifName: n.ifName,
            args: runtime.args,
            capabilityArgs: runtime.capabilityArgs,
          },
          {
            ...(signal ? { signal } : {}),
            // Before each plugin reads its config, the journal says how far
            // the chain got and which process group runs the plugin.
            onPlugin: async ({ plugin, prevResult, pid }) => {
              adding.reached = plugin;
              if (prevResult === undefined) delete adding.prevResult;
              else adding.prevResult = prevResult;
              adding.plugin = processIdentity(pid);
              await journal();
              onPlugin?.(plugin);
            },
          },
        );
    delete state.adding;
    const attached: AttachedNetwork = {
      name: n.list.name,
      ifName: n.ifName,
      config: n.list.bytes,
      runtime,
      result,
      ...(n.native ? { driver: 'native' as const, hostIfName: n.native.hostIfName } : {}),
    };
    state.networks.push(attached);
    await journal();
    return attached;
  }

  /**
   * Connects a running container to one more network (podman's `network
   * connect`): the lowest free ethN (or `options.interfaceName`) is added,
   * the other interfaces untouched. Under the container's lock, journalled
   * as a setup's network is (a crash mid-connect leaves an `adding` entry
   * that gc or teardown undoes). Refused, changing nothing: a network
   * already attached (ERR_PODNET_ALREADY_CONNECTED), a rootless, 'none',
   * { path } or { container } container (ERR_PODNET_CANNOT_CONNECT), bad
   * options (ERR_PODNET_INVALID_ARGUMENT), an unknown network. Published on
   * the `podnet:network:connect` diagnostics channel.
   */
  async connect(
    id: string,
    network: string,
    options: PerNetworkOptions = {},
  ): Promise<AttachedNetwork> {
    return this.#underLock(id, async (state) => {
      const n = await planConnect(this.#context(), state, network, options);
      publish('podnet:network:connect', { id, network, phase: 'planned' });
      checkPrivateDir(this.cni.cache.dir);
      const journal = (): Promise<void> => this.store.write(state);
      const netns = n.native ? await NetworkNamespace.open(state.netnsPath) : undefined;
      const requested = state.networksRequested;
      try {
        // Inspect lists the networks by name from now on, as podman does
        // once a container has more than its default network.
        state.networksRequested = true;
        const attached = await this.#addNetwork(state, n, netns, journal, undefined, (i) =>
          publish('podnet:network:connect', { id, network, phase: `plugin:${i}` }),
        );
        publish('podnet:network:connect', { id, network, phase: 'attached' });
        return attached;
      } catch (err) {
        const cleanup: unknown[] = [];
        try {
          // The namespace stays: the native driver's veth must go too.
          await undoPending(this.#context(), state, { deleteLink: true });
          delete state.adding;
          state.networksRequested = requested;
          await journal();
        } catch (e) {
          // The `adding` entry stays, for teardown or gc to finish.
          cleanup.push(...(e instanceof AggregatePodnetError ? e.errors : [e]));
        }
        throw withCleanupError(err, id, cleanup);
      } finally {
        netns?.close();
      }
    });
  }

  /**
   * Disconnects a running container from one of its networks (podman's
   * `network disconnect`): that interface is removed (CNI DEL, or the
   * native driver's detach), its lease freed, the others untouched. The
   * network is moved to the journal's `adding` entry before its DEL, so a
   * crash midway is finished by gc or teardown, and so is a DEL that fails
   * (its error is thrown, the entry kept). ERR_PODNET_NOT_CONNECTED when it
   * is not attached. Published on `podnet:network:connect`.
   */
  async disconnect(id: string, network: string): Promise<void> {
    await this.#underLock(id, async (state) => {
      checkConnectable(state, 'disconnect');
      const i = state.networks.findIndex((n) => n.name === network);
      if (i === -1) throw new NotConnectedError(id, network);
      const [n] = state.networks.splice(i, 1);
      const { result, ...rest } = n!;
      // Every plugin ran: DEL asks them all, with the ADD's result.
      state.adding = {
        ...rest,
        reached: parseNetworkList(n!.config, `the state of container '${id}'`).plugins.length - 1,
        prevResult: result,
      };
      await this.store.write(state);
      publish('podnet:network:connect', { id, network, phase: 'detaching' });
      await undoPending(this.#context(), state, { deleteLink: true });
      delete state.adding;
      await this.store.write(state);
      publish('podnet:network:connect', { id, network, phase: 'detached' });
    });
  }

  /**
   * Attaches every network of a running container again with the same
   * interface names, addresses and MACs (podman's `network reload`), for
   * when something flushed the firewall. The plugins' networks get DEL then
   * ADD with the recorded runtime config plus the recorded addresses and
   * MAC (so host-local and tuning give the same ones back); the native
   * driver's get their firewall elements added again (links, addresses and
   * leases are not what a flush removes). Returns the networks reloaded.
   * Between a DEL and its ADD the state still names the network: a crash
   * there leaves what teardown's DEL (idempotent) removes.
   */
  async reload(id: string): Promise<AttachedNetwork[]> {
    return this.#underLock(id, async (state) => {
      checkConnectable(state, 'reload');
      checkPrivateDir(this.cni.cache.dir);
      for (const [i, n] of state.networks.entries()) {
        if (n.driver === 'native') {
          await reattachFirewall(this.#context(), state, n);
          continue;
        }
        await undoNetwork(this.#context(), state, n);
        const runtime = sameAddresses(n);
        const list = parseNetworkList(n.config, `the state of container '${id}'`);
        const result = await this.cni.add(list, {
          containerId: id,
          netns: state.netnsPath,
          ifName: n.ifName,
          args: runtime.args,
          capabilityArgs: runtime.capabilityArgs,
        });
        state.networks[i] = { ...n, runtime, result };
        await this.store.write(state);
      }
      publish('podnet:network:connect', { id, phase: 'reloaded' });
      return state.networks;
    });
  }

  // Runs `fn` on a container's state under its lock (an unknown ID is
  // refused before any lock file is made).
  async #underLock<T>(id: string, fn: (state: ContainerState) => Promise<T>): Promise<T> {
    checkContainerId(id);
    if (!(await this.store.read(id))) throw new NoSuchContainerError(id, this.store.dir);
    const held = await lock(this.store.lockPathOf(id), id, this.#lockTimeoutMs);
    try {
      const state = await this.store.read(id);
      if (!state) throw new NoSuchContainerError(id, this.store.dir);
      return await fn(state);
    } finally {
      held.release();
    }
  }

  // What planning and undoing need (the driver stays private).
  #context(): PlanContext & UndoContext {
    return {
      cni: this.cni,
      store: this.store,
      netnsDir: this.netnsDir,
      defaultNetwork: this.defaultNetwork,
      rootless: this.rootless,
      driver: this.driver,
      bridge: this.#bridge,
    };
  }

  // The native driver's attach of one network: journalled first (its undo
  // finds every trace by the names recorded here), then made in-process.
  async #attachNative(
    state: ContainerState,
    n: PlannedNetwork,
    runtime: ContainerState['networks'][number]['runtime'],
    netns: NetworkNamespace,
    journal: () => Promise<void>,
  ): Promise<CniResult> {
    const native = n.native!;
    await journal();
    const caps = runtime.capabilityArgs;
    const ips = Array.isArray(caps['ips']) ? (caps['ips'] as string[]) : [];
    const mac = typeof caps['mac'] === 'string' ? caps['mac'] : undefined;
    return this.#bridge.attach({
      network: native.network,
      config: n.list.bytes,
      containerId: state.id,
      ifName: n.ifName,
      hostIfName: native.hostIfName,
      netns,
      ips,
      ...(mac === undefined ? {} : { mac }),
      ports: nativePorts(state, runtime),
      args: runtime.args,
      capabilityArgs: caps,
    });
  }

  /**
   * Loads a container's network from its state (written by any process).
   * The handle is for looking: disposing it closes it; `teardown()` is the
   * explicit way to tear the container down.
   */
  async load(id: string): Promise<Attachment> {
    const state = await this.store.read(id);
    if (!state) throw new NoSuchContainerError(id, this.store.dir);
    // A rootless container's namespace is reached through its helper, later
    // and only if needed (stats): joining costs a process start.
    const netns = heldByProcess(state)
      ? undefined
      : await NetworkNamespace.open(state.netnsPath).catch(() => undefined);
    return new Attachment((cid) => this.#teardownById(cid), { state, netns, owned: false });
  }

  /** Every container with state (ready or still in setup). */
  async list(): Promise<ContainerState[]> {
    return (await this.store.list()).states;
  }

  /**
   * Removes what dead containers left, deciding only on definite answers
   * and under each container's lock: crashed setups and containers whose
   * namespace (or its helper) is gone are undone from their journals;
   * cached CNI attachments of no container whose namespace is gone are
   * DELeted (freeing host-local leases, as after a reboot). A setup still
   * running is left alone; anything gc could not decide is kept and named
   * in the report.
   */
  async gc(): Promise<GcReport> {
    return collectGarbage({
      cni: this.cni,
      store: this.store,
      bridge: this.#bridge,
      sweepCniCache: !this.rootless,
    });
  }

  // Teardown of one container by ID: under its lock (waiting for a setup in
  // progress), from the state as it is on disk now.
  async #teardownById(id: string): Promise<void> {
    const held = await lock(this.store.lockPathOf(id), id, this.#lockTimeoutMs);
    try {
      const state = await this.store.read(id);
      if (state) await undo(this.#context(), state);
    } finally {
      held.release();
    }
  }
}
