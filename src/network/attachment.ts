// A container's network as a handle: what setup returns and load finds.
// Inspect and stats read it; teardown is explicit, and dispose tears down
// only a network this handle set up (a handle from load() is someone
// else's container: disposing it just closes it).
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { traced } from '../diagnostics.js';
import { InvalidArgumentError, PodnetError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';
import { processAlive } from '../process.js';
import { queryForwarderStats } from '../rootless/forwarder/stats-endpoint.js';
import {
  type ForwarderStats,
  type Pasta,
  type RootlessEngines,
  type Slirp4netns,
  stopEngines,
  UserNamespace,
} from '../rootless/index.js';
import { buildHosts, buildResolvConf, readHostResolvConf } from './etc.js';
import { buildNetworkSettings } from './inspect.js';
import { type ContainerFrame, publishedVia, summarizeStats, watchFrames } from './stats.js';
import type {
  AttachedNetwork,
  ContainerState,
  ContainerStats,
  NetworkSettings,
  PublishedPortStats,
  StatsOptions,
  TeardownTraceContext,
} from './types.js';

/** Options of {@link Attachment.watchStats}. */
export interface WatchStatsOptions {
  /** Milliseconds between frames (default 1000). */
  interval?: number;
  /** Ends the watch: the iterator finishes, with no error. */
  signal?: AbortSignal;
  /** What each frame lists of lo (as for {@link Attachment.stats}). */
  stats?: StatsOptions;
}

/** One frame of {@link Attachment.watchStats}. */
export interface StatsFrame extends ContainerFrame {
  /** When the sample was taken. */
  time: Date;
}

/** What an attachment's teardown asks of its Networking: undo the container under its lock. */
export type TeardownById = (id: string) => Promise<void>;

/** How an attachment came to be, and what it holds in this process. */
export interface AttachmentInit {
  state: ContainerState;
  netns: NetworkNamespace | undefined;
  /** Set up by this handle (dispose tears down), or loaded (dispose closes). */
  owned: boolean;
  engines?: RootlessEngines | undefined;
  userns?: UserNamespace | undefined;
}

/**
 * A container's network as set up (or loaded from state): inspect it, read
 * its statistics, tear it down.
 */
export class Attachment implements AsyncDisposable {
  readonly #teardown: TeardownById;
  readonly #state: ContainerState;
  readonly #owned: boolean;
  #netns: NetworkNamespace | undefined;
  #engines: RootlessEngines | undefined;
  // The helper holding a rootless namespace this process set up (ended by teardown).
  #userns: UserNamespace | undefined;
  // A helper joined to reach a rootless namespace set up elsewhere (ended by close).
  #joined: UserNamespace | undefined;

  /** @internal Made by Networking.setup/load. */
  constructor(teardown: TeardownById, init: AttachmentInit) {
    this.#teardown = teardown;
    this.#state = init.state;
    this.#netns = init.netns;
    this.#owned = init.owned;
    this.#engines = init.engines;
    this.#userns = init.userns;
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

  /**
   * The container's /etc/resolv.conf content, podman's rules: with DNS on
   * for a network (dnsname in its list), that network's gateway as the
   * nameserver and dnsname's domain (dns.podman) searched first; otherwise
   * the host's nameservers less loopback ones (systemd-resolved's upstreams
   * when the host's file names only its stub), podman's public fallback
   * when none is left. The host's search domains and options follow.
   */
  async resolvConf(): Promise<string> {
    return buildResolvConf(this.#state, await readHostResolvConf());
  }

  /**
   * The container's /etc/hosts content, podman's format: localhost for
   * 127.0.0.1 and ::1, host.containers.internal (and host.docker.internal)
   * for its first network's gateway, then each of its addresses with its
   * name (and its pod's), one tab between address and names.
   */
  hosts(): string {
    return buildHosts(this.#state);
  }

  /**
   * Counters of every non-loopback interface in the namespace, and their
   * sum; lo as well (flagged) when `options.loopback` asks. With published
   * ports, `publishedVia` says which counter carries them and, when podnet's
   * forwarder publishes them, `ports` has its per-port counters: read here
   * for a forwarder in this process, else asked of the keeper or detached
   * forwarder the state records (over its stats endpoint).
   */
  async stats(options: StatsOptions = {}): Promise<ContainerStats> {
    const links = await (await this.openNetns()).links();
    const fwd = await this.#forwarderStats();
    // Copies: the caller's to keep, whatever the forwarder does next.
    const ports = fwd?.ports.map((p): PublishedPortStats => ({ ...p }));
    const via = publishedVia(this.#state, fwd !== undefined);
    return summarizeStats(links, options, {
      ...(via === undefined ? {} : { publishedVia: via }),
      ...(ports === undefined ? {} : { ports }),
    });
  }

  // The forwarder's counters: this process's own, or the first recorded
  // helper's (keeper, forwarder) that runs one.
  async #forwarderStats(): Promise<ForwarderStats | undefined> {
    const own = this.#engines?.forwarder;
    if (own) return own.stats();
    if (this.#state.portMappings.length === 0) return undefined;
    for (const h of this.#state.helpers) {
      if (h.kind !== 'keeper' && h.kind !== 'forwarder') continue;
      if (!processAlive(h)) continue;
      const s = await queryForwarderStats(h);
      if (s !== undefined) return s;
    }
    return undefined;
  }

  /**
   * The container's namespace, opened on first use when this handle has
   * none yet: for a rootless container of an unprivileged user, through a
   * helper joined to its user namespace, so that `spawn` enters that too.
   * `close()` releases it.
   */
  async openNetns(): Promise<NetworkNamespace> {
    this.#netns ??= await this.#open();
    return this.#netns;
  }

  /**
   * Statistics as a stream: a frame at once with the counters, then one
   * every `interval` ms with each interface's rates since the previous
   * frame as well. Ends when `signal` aborts or the loop is left; frames
   * are taken when asked for, so a consumer that is slow gets them further
   * apart (rates stay right: they use the time that passed). Throws
   * InvalidArgumentError unless `interval` is a positive number.
   */
  async *watchStats(options: WatchStatsOptions = {}): AsyncGenerator<StatsFrame, void, undefined> {
    const { interval = 1000, signal, stats: statsOptions = {} } = options;
    if (typeof interval !== 'number' || !(interval > 0) || !Number.isFinite(interval))
      throw new InvalidArgumentError(`interval must be a positive number of ms, got ${interval}`);
    if (signal?.aborted) return;
    const frames = watchFrames(async () => new Map([[0, await this.stats(statsOptions)]]), {
      now: () => performance.now(),
      date: () => new Date(),
      pause: () =>
        sleep(interval, undefined, signal ? { signal } : {}).then(
          () => true,
          () => false,
        ),
    });
    for await (const { time, containers } of frames) {
      if (signal?.aborted) return;
      yield { time, ...containers.get(0)! };
    }
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
   * Tears the container's network down, whoever set it up: its in-process
   * engines stop, then, under the container's lock (waiting for a setup
   * still in progress), everything its state names is undone and the state
   * deleted. Throws a TeardownError, keeping the state, if a step failed.
   * Running it twice is fine. Traced on the `podnet:network:teardown`
   * tracing channel.
   */
  teardown(): Promise<void> {
    const context: TeardownTraceContext = { id: this.#state.id };
    return traced('podnet:network:teardown', context, () => this.#teardownNow());
  }

  async #teardownNow(): Promise<void> {
    const engines = this.#engines;
    this.#engines = undefined;
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
    await this.#teardown(this.#state.id);
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

  /**
   * Tears down a network this handle set up; only closes one it loaded
   * (another process's container is never torn down by leaving a scope).
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#owned) await this.teardown();
    else this.close();
  }
}
