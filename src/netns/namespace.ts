import { randomUUID } from 'node:crypto';
import { fstatSync, statSync } from 'node:fs';
import { readdir, statfs } from 'node:fs/promises';
import net from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { publish } from '../diagnostics.js';
import {
  ClosedError,
  InvalidArgumentError,
  isPodnetError,
  LinkNotFoundError,
  NetlinkDecodeError,
  type PodnetError,
  PodnetSystemError,
} from '../errors.js';
import { call, type NativeRtnlSocket, native, openNetnsFd, systemError } from '../native.js';
import {
  checkAck,
  decodeAddresses,
  decodeLinkStats,
  decodeLinks,
  encodeGetAddr,
  encodeGetLink,
  encodeGetStats,
  type InterfaceAddress,
  type Link,
  type LinkStats,
  linkIndexOf,
  linkStatsFields,
  statsFromCounters,
} from './rtnl.js';
import {
  encodeDelLink,
  encodeNewAddr,
  encodeNewLink,
  encodeNewVeth,
  encodeSetLinkUp,
  encodeSetMaster,
} from './rtnl-write.js';
import { checkPort, encodeSockaddr, type SocketType, socketParams } from './sockaddr.js';
import {
  checkSpawnRequest,
  type NamespaceProcess,
  type NamespaceSpawnOptions,
  spawnInNamespace,
} from './spawn.js';
import { getStatsKnown, noteGetStats, StatsChannel, useGetStats } from './stats-channel.js';
import { NetlinkWatch, type WatchOptions } from './watch.js';

const NSFS_MAGIC = 0x6e736673;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;
const NETLINK_NETFILTER = 12;
const IFNAMSIZ = 16;
const ENODEV = -19;
const STATS_FIELDS = linkStatsFields.length;
// A sync read waits this long for a reply that is not there at once (as the
// kept socket's SO_RCVTIMEO does).
const SWEEP_TIMEOUT_MS = 5000;
// A bound on one batch of `sockets()`: what one SCM_RIGHTS message carries
// (SCM_MAX_FD), so a helper that hands fds over can serve any batch too;
// plenty for a pool.
const MAX_SOCKET_BATCH = 253;

/** Where namespaces are mounted unless told otherwise. */
export interface NamespaceLocation {
  /** Name of the mount point file (default `cni-<random uuid>`). */
  name?: string;
  /** Directory of the mount point (default {@link defaultNetnsDir}). */
  dir?: string;
}

/** Options of `linkStats` and `linkStatsSync`. */
export interface LinkStatsOptions {
  /** Return every counter as a bigint (exact above 2^53), as fs.stat does. */
  bigint?: boolean;
}

/** A statistics read over many namespaces, made by {@link NetworkNamespace.statsSweep}. */
export interface LinkStatsSweep extends Disposable {
  /** The namespaces, in the order of the results. */
  readonly namespaces: readonly NetworkNamespace[];
  /** The interface read in each. */
  readonly ifname: string;
  /**
   * The counters of each namespace, in one native call. A namespace whose
   * read failed (a missing link, a closed handle) has its PodnetError in
   * its place, so one does not hide the others.
   */
  readSync(): (LinkStats | PodnetError)[];
  /** Ends the sweep (its namespaces stay open). */
  close(): void;
}

/** Options of `ns.listen`. */
export interface ListenOptions {
  /** Port to bind inside the namespace (0: any free port). */
  port?: number;
  /** IP address to bind inside the namespace (default 0.0.0.0). */
  host?: string;
  /** listen(2) backlog. */
  backlog?: number;
}

/** Options of `ns.connect`. */
export interface ConnectOptions {
  /** Port to connect to. */
  port: number;
  /** IP address to connect to, as seen from inside the namespace. */
  host: string;
}

/** What a socket to open inside a namespace is (socket(2) arguments, and where to bind it). */
export interface SocketRequest {
  /** AF_INET, AF_INET6, AF_NETLINK, ... */
  domain: number;
  /** SOCK_STREAM, SOCK_DGRAM, SOCK_RAW (without flags: sockets are always O_CLOEXEC). */
  type: number;
  /** The protocol (0, NETLINK_ROUTE, ...). */
  protocol: number;
  /** How many sockets (1 to 253). */
  count: number;
  /** A raw sockaddr to bind each socket to. */
  addr?: Buffer;
}

/**
 * Opens sockets inside a namespace this process cannot enter itself, such as
 * the network namespace of an unprivileged user's own user namespace (see
 * `UserNamespace` in podnet's rootless layer): a helper living inside opens
 * them and hands the fds over.
 */
export interface SocketSource {
  /** Resolves to `count` new O_CLOEXEC fds, owned by the caller. */
  openSockets(req: SocketRequest): Promise<number[]>;
}

/** One entry of {@link NetworkNamespace.list}. */
export interface NamespaceEntry {
  /** File name in the directory. */
  name: string;
  /** Full path of the mount point. */
  path: string;
}

// A handle dropped without close() would hold its namespace fd (and so the
// namespace itself) until the process exits; closing it at collection, as
// fs.FileHandle does, bounds that. (The netlink socket closes itself.)
const forgotten = new FinalizationRegistry<number>((fd) => {
  try {
    native.closeFd(fd);
  } catch {
    // Nothing to tell anyone at collection time.
  }
});

/**
 * Default namespace directory: /run/netns for root (where `ip netns` looks),
 * $XDG_RUNTIME_DIR/netns for other users (as rootless podman does).
 */
export function defaultNetnsDir(): string {
  const runtime = userRuntimeDir();
  return runtime === undefined ? '/run/netns' : join(runtime, 'netns');
}

/**
 * An unprivileged user's runtime directory, as podman finds it:
 * $XDG_RUNTIME_DIR, else /run/user/UID when it exists and is theirs (what
 * systemd-logind makes at login, also when a su or sudo session did not
 * set the variable). Undefined for root, and when there is none.
 */
export function userRuntimeDir(): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0) return undefined;
  const xdg = process.env['XDG_RUNTIME_DIR'];
  if (xdg) return xdg;
  const dir = `/run/user/${uid}`;
  try {
    return statSync(dir).uid === uid ? dir : undefined;
  } catch {
    return undefined;
  }
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..') {
    throw new InvalidArgumentError(
      `namespace name must be a non-empty file name, not ${JSON.stringify(name)}`,
    );
  }
  if (name.includes('/') || name.includes('\0') || Buffer.byteLength(name) > 255) {
    throw new InvalidArgumentError(
      `namespace name '${name}' must not contain '/' or NUL, or exceed 255 bytes`,
    );
  }
  return name;
}

/** A cached RTM_GETSTATS request: the link's index and the request's bytes. */
interface StatsRequest {
  readonly index: number;
  readonly bytes: Buffer;
}

/** The counters of a reply, or its failure as a number (a negative errno), as the addon's stats() gives it. */
function decodeOrErrno(
  buf: Buffer,
  len: number,
  what: string,
  bigint: boolean,
): LinkStats<number | bigint> | number {
  try {
    return decodeLinkStats(buf, len, what, bigint);
  } catch (err) {
    if (err instanceof PodnetSystemError) return err.errno;
    throw err;
  }
}

/** The error of a failed statistics read (the addon's stats() result N). */
function statsError(n: number, what: string): Error {
  if (n === native.STATS_MALFORMED) return new NetlinkDecodeError(`reply to ${what}`);
  if (n === native.STATS_MISSING)
    return new NetlinkDecodeError(`no link statistics in reply to ${what}`);
  return new PodnetSystemError(what, { errno: n, syscall: 'netlink' });
}

/** The mount point path of NAME in DIR (default dir as create uses), with NAME checked. */
export function namespacePath(name: string, dir: string = defaultNetnsDir()): string {
  return locate({ name, dir }).path;
}

function locate(opts: NamespaceLocation): { dir: string; name: string; path: string } {
  const dir = resolve(opts.dir ?? defaultNetnsDir());
  const name = checkName(opts.name ?? `cni-${randomUUID()}`);
  return { dir, name, path: join(dir, name) };
}

function checkIfname(ifname: unknown): string {
  if (
    typeof ifname !== 'string' ||
    ifname === '' ||
    Buffer.byteLength(ifname) >= IFNAMSIZ ||
    ifname.includes('\0')
  ) {
    throw new InvalidArgumentError(
      `interface name must be 1 to 15 bytes, not ${JSON.stringify(ifname)}`,
    );
  }
  return ifname;
}

/**
 * A network namespace, held open by an fd and usually mounted at `path`.
 *
 * Threads: no JavaScript thread and no libuv pool thread ever enters the
 * namespace. Creating it (unshare) and opening sockets inside it (setns +
 * socket) run on a native thread made for that one job and then discarded.
 * A socket keeps the namespace it was opened in, so everything after that
 * (netlink requests, TCP I/O) runs from the event loop as usual.
 *
 * One NETLINK_ROUTE socket is opened inside the namespace on first use and
 * kept until `close()`, so a statistics read is one netlink round trip.
 */
export class NetworkNamespace implements AsyncDisposable {
  /** Mount point (or the path it was opened from). */
  readonly path: string;
  /** File name of the mount point. */
  readonly name: string;
  /** Whether podnet mounted it (create/fromPid): `Symbol.asyncDispose` then removes it. */
  readonly owned: boolean;
  #fd: number | undefined;
  #rtnl: NativeRtnlSocket | undefined;
  // #rtnl's RTM_GETSTATS by index, into #counters: linkStatsSync's hot path.
  #statsOf: ((index: number) => number) | undefined;
  // The event-loop socket of asynchronous statistics reads and sweeps.
  #chan: StatsChannel | undefined;
  #removed = false;
  // Reused by every statistics read; made on the first one.
  #resp: Buffer | undefined;
  readonly #counters = new Float64Array(STATS_FIELDS);
  readonly #requests = new Map<string, Buffer>();
  // RTM_GETSTATS names a link by index: the request of each name read,
  // made for the index it had. ENODEV drops a name's entry (a link made
  // again under the same name has a new index).
  readonly #statsReqs = new Map<string, StatsRequest>();
  readonly #watches = new Set<NetlinkWatch>();
  // Set when sockets come from a helper inside instead of setns.
  readonly #source: SocketSource | undefined;
  // Processes spawn() started and close() ends (detached ones excepted).
  readonly #children = new Set<NamespaceProcess>();
  // The exits of those close() killed, awaited by remove() and disposal.
  readonly #ended: Promise<void>[] = [];

  private constructor(path: string, fd: number, owned: boolean, source?: SocketSource) {
    this.path = path;
    this.name = basename(path);
    this.#fd = fd;
    this.owned = owned;
    this.#source = source;
    forgotten.register(this, fd, this);
  }

  /**
   * Creates a new network namespace and bind-mounts it at DIR/NAME. The
   * directory is created (0711) if missing and made a shared mount; an
   * existing NAME is an error (EEXIST) that leaves it untouched. A failure
   * leaves no file and no mount behind.
   */
  static async create(opts: NamespaceLocation = {}): Promise<NetworkNamespace> {
    const { dir, path } = locate(opts);
    const fd = await call(`creating network namespace '${path}'`, native.createNetns(dir, path));
    publish('podnet:netns:create', { path });
    return new NetworkNamespace(path, fd, true);
  }

  /**
   * Bind-mounts the network namespace of process PID at DIR/NAME, so it
   * outlives the process (podman's setupNetNS).
   */
  static async fromPid(pid: number, opts: NamespaceLocation = {}): Promise<NetworkNamespace> {
    if (!Number.isInteger(pid) || pid <= 0)
      throw new InvalidArgumentError(`pid must be a positive integer, not ${pid}`);
    const { dir, path } = locate(opts);
    const fd = await call(
      `mounting the network namespace of pid ${pid} at '${path}'`,
      native.bindNetns(dir, `/proc/${pid}/ns/net`, path),
    );
    publish('podnet:netns:create', { path, pid });
    return new NetworkNamespace(path, fd, true);
  }

  /**
   * Opens an existing namespace file (a mount point, or /proc/PID/ns/net).
   * It must be a network namespace: anything else is a NotANamespaceError.
   * `close()` releases it; it is never unmounted unless `remove()` is called.
   */
  static async open(path: string): Promise<NetworkNamespace> {
    if (typeof path !== 'string' || path === '')
      throw new InvalidArgumentError('namespace path must be a non-empty string');
    const abs = resolve(path);
    const fd = await openNetnsFd(abs);
    publish('podnet:netns:open', { path: abs });
    return new NetworkNamespace(abs, fd, false);
  }

  /**
   * Opens a namespace (as {@link open}) whose sockets come from `source`
   * rather than from setns: for a namespace this process may not enter,
   * such as an unprivileged user's own. Its netlink socket is opened at once,
   * so `linkStatsSync` works as for any other namespace.
   */
  static async openWith(path: string, source: SocketSource): Promise<NetworkNamespace> {
    const ns = await NetworkNamespace.open(path);
    const fresh = new NetworkNamespace(ns.path, ns.#fd!, false, source);
    forgotten.unregister(ns);
    ns.#fd = undefined;
    try {
      await fresh.#rtnlAsync();
    } catch (err) {
      fresh.close();
      throw err;
    }
    return fresh;
  }

  /** The network namespaces mounted in DIR (default {@link defaultNetnsDir}), sorted by name. */
  static async list(dir: string = defaultNetnsDir()): Promise<NamespaceEntry[]> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const out: NamespaceEntry[] = [];
    for (const name of names.sort()) {
      const path = join(dir, name);
      // A plain file here is an unfinished or unmounted entry, not a namespace.
      const st = await statfs(path).catch(() => undefined);
      if (st?.type === NSFS_MAGIC) out.push({ name, path });
    }
    return out;
  }

  /** Directory holding the mount point. */
  get dir(): string {
    return dirname(this.path);
  }

  /** Inode number of the namespace (what `ls -iL /proc/PID/ns/net` shows). */
  get inode(): number {
    return fstatSync(this.#nsfd()).ino;
  }

  /** Whether `close()` or `remove()` was called. */
  get closed(): boolean {
    return this.#fd === undefined;
  }

  #nsfd(): number {
    if (this.#fd === undefined) throw new ClosedError(`network namespace '${this.path}'`);
    return this.#fd;
  }

  // A NETLINK_ROUTE socket opened inside the namespace, on a thread of its
  // own (synchronously) or through #openOne (a helper's, for openWith).
  #netlinkFdSync(): number {
    const nsfd = this.#nsfd();
    // openWith opened it; only close() takes it away.
    if (this.#source) throw new ClosedError(`network namespace '${this.path}'`);
    try {
      return native.socketInSync(nsfd, AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    } catch (err) {
      throw systemError(`opening a netlink socket in '${this.path}'`, err);
    }
  }

  #netlinkFdAsync(): Promise<number> {
    return this.#openOne(`opening a netlink socket in '${this.path}'`, {
      domain: AF_NETLINK,
      type: SOCK_RAW,
      protocol: NETLINK_ROUTE,
    });
  }

  #rtnlSync(): NativeRtnlSocket {
    return this.#rtnl ?? this.#keepRtnl(this.#netlinkFdSync());
  }

  #keepRtnl(fd: number): NativeRtnlSocket {
    const rtnl = new native.RtnlSocket(fd, this.#counters);
    this.#rtnl = rtnl;
    this.#statsOf = rtnl.statsReader();
    return rtnl;
  }

  async #rtnlAsync(): Promise<NativeRtnlSocket> {
    if (this.#rtnl) return this.#rtnl;
    const fd = await this.#netlinkFdAsync();
    if (this.#rtnl || this.#fd === undefined) {
      native.closeFd(fd); // lost a race with another caller, or closed meanwhile
      return this.#rtnlSync();
    }
    return this.#keepRtnl(fd);
  }

  #chanSync(): StatsChannel {
    this.#chan ??= new StatsChannel(this.#netlinkFdSync(), this.path);
    return this.#chan;
  }

  async #chanAsync(): Promise<StatsChannel> {
    if (this.#chan) return this.#chan;
    const fd = await this.#netlinkFdAsync();
    if (this.#chan || this.#fd === undefined) {
      native.closeFd(fd); // lost a race with another caller, or closed meanwhile
      return this.#chanSync();
    }
    this.#chan = new StatsChannel(fd, this.path);
    return this.#chan;
  }

  /** Every link in the namespace, with its counters. */
  async links(): Promise<Link[]> {
    const what = `listing links in '${this.path}'`;
    const rtnl = await this.#rtnlAsync();
    const reply = await call(what, rtnl.requestAsync(encodeGetLink()));
    return decodeLinks(reply, reply.length, what);
  }

  /** Every IPv4 and IPv6 address in the namespace, with its link index, scope and flags. */
  async addresses(): Promise<InterfaceAddress[]> {
    const what = `listing addresses in '${this.path}'`;
    const rtnl = await this.#rtnlAsync();
    const reply = await call(what, rtnl.requestAsync(encodeGetAddr()));
    return decodeAddresses(reply, reply.length, what);
  }

  async #ack(what: string, req: Buffer): Promise<void> {
    const rtnl = await this.#rtnlAsync();
    const reply = await call(what, rtnl.requestAsync(req));
    checkAck(reply, reply.length, what);
  }

  /** One link by name, or a LinkNotFoundError. */
  async link(ifname: string): Promise<Link> {
    const what = `looking up '${ifname}' in '${this.path}'`;
    const rtnl = await this.#rtnlAsync();
    try {
      const reply = await call(what, rtnl.requestAsync(encodeGetLink(checkIfname(ifname))));
      const [link] = decodeLinks(reply, reply.length, what);
      if (!link) throw new LinkNotFoundError(ifname, this.path);
      return link;
    } catch (err) {
      throw this.#notFound(ifname, err);
    }
  }

  /**
   * Opens a NETLINK_NETFILTER socket inside the namespace and returns its
   * fd (O_CLOEXEC), the caller owning it: what nf_tables batches for this
   * namespace are sent on (podnet's own table, src/bridge/nft/).
   */
  async netfilterSocket(): Promise<number> {
    return this.#openOne(`opening a netfilter netlink socket in '${this.path}'`, {
      domain: AF_NETLINK,
      type: SOCK_RAW,
      protocol: NETLINK_NETFILTER,
    });
  }

  /** Sets a link up (IFF_UP), e.g. `lo`, which a new namespace has down. */
  async setLinkUp(ifname: string): Promise<void> {
    try {
      await this.#ack(
        `setting '${ifname}' up in '${this.path}'`,
        encodeSetLinkUp(checkIfname(ifname)),
      );
    } catch (err) {
      throw this.#notFound(ifname, err);
    }
  }

  /** Adds an address ("10.0.0.1/24", "fd00::1/64") to a link. */
  async addAddress(ifname: string, cidr: string): Promise<void> {
    const { index } = await this.link(ifname);
    await this.#ack(`adding ${cidr} to '${ifname}' in '${this.path}'`, encodeNewAddr(index, cidr));
  }

  /**
   * Creates a veth pair: `name` in this namespace, `peer.name` in
   * `peer.netns` (default: this namespace). Both ends start down.
   */
  async addVeth(
    name: string,
    peer: { name: string; netns?: NetworkNamespace },
    opts: { mtu?: number } = {},
  ): Promise<void> {
    const req = encodeNewVeth({
      name: checkIfname(name),
      peerName: checkIfname(peer.name),
      ...(peer.netns ? { peerNetnsFd: peer.netns.#nsfd() } : {}),
      ...(opts.mtu === undefined ? {} : { mtu: opts.mtu }),
    });
    await this.#ack(`creating veth '${name}' in '${this.path}'`, req);
  }

  /** Creates a bridge or dummy link (down, no addresses). */
  async addLink(ifname: string, kind: 'bridge' | 'dummy'): Promise<void> {
    await this.#ack(
      `creating ${kind} '${ifname}' in '${this.path}'`,
      encodeNewLink(checkIfname(ifname), kind),
    );
  }

  /** Enslaves `ifname` to the bridge `master`. */
  async setMaster(ifname: string, master: string): Promise<void> {
    const { index } = await this.link(master);
    try {
      await this.#ack(
        `attaching '${ifname}' to '${master}' in '${this.path}'`,
        encodeSetMaster(checkIfname(ifname), index),
      );
    } catch (err) {
      throw this.#notFound(ifname, err);
    }
  }

  /** Deletes a link (a veth's peer goes with it). */
  async deleteLink(ifname: string): Promise<void> {
    try {
      await this.#ack(`deleting '${ifname}' in '${this.path}'`, encodeDelLink(checkIfname(ifname)));
    } catch (err) {
      throw this.#notFound(ifname, err);
    }
  }

  /**
   * @internal For podnet's own drivers: sends one rtnetlink request on the
   * namespace's kept socket and returns the reply's bytes, synchronously.
   * Each such request is microseconds of kernel work, less than a round
   * trip through the libuv pool would add. Kernel errors are thrown as
   * PodnetSystemError.
   */
  rtnlRequestSync(what: string, req: Buffer): Buffer {
    let reply: number | Buffer;
    try {
      reply = this.#rtnlSync().request(req);
    } catch (err) {
      throw systemError(what, err);
    }
    if (typeof reply === 'number') throw new NetlinkDecodeError(`no reply buffer for ${what}`);
    return reply;
  }

  /** @internal {@link rtnlRequestSync} for a request sent with NLM_F_ACK: the ack, or the kernel's error. */
  rtnlAckSync(what: string, req: Buffer): void {
    const reply = this.rtnlRequestSync(what, req);
    checkAck(reply, reply.length, what);
  }

  /**
   * @internal The namespace's fd, for a request that names the namespace
   * (a veth's peer moved into it): valid until close().
   */
  get fd(): number {
    return this.#nsfd();
  }

  #request(ifname: string): Buffer {
    let req = this.#requests.get(ifname);
    if (!req) {
      req = encodeGetLink(checkIfname(ifname));
      if (this.#requests.size >= 64) this.#requests.clear();
      this.#requests.set(ifname, req);
    }
    return req;
  }

  #notFound(ifname: string, err: unknown): unknown {
    if (isPodnetError(err) && err.code === 'ENODEV')
      return new LinkNotFoundError(ifname, this.path, { cause: err });
    return err;
  }

  #remember(ifname: string, index: number): StatsRequest {
    if (this.#statsReqs.size >= 64) this.#statsReqs.clear();
    const req = { index, bytes: encodeGetStats(index) };
    this.#statsReqs.set(ifname, req);
    return req;
  }

  // The RTM_GETSTATS request of IFNAME: cached, or for the index an
  // RTM_GETLINK by name finds.
  #statsReqSync(rtnl: NativeRtnlSocket, ifname: string, what: string): StatsRequest {
    const cached = this.#statsReqs.get(ifname);
    if (cached !== undefined) return cached;
    this.#resp ??= Buffer.allocUnsafe(16 * 1024);
    const reply = rtnl.request(this.#request(ifname), this.#resp);
    const index =
      typeof reply === 'number'
        ? linkIndexOf(this.#resp, reply, what)
        : linkIndexOf(reply, reply.length, what);
    return this.#remember(ifname, index);
  }

  async #statsReqAsync(ch: StatsChannel, ifname: string, what: string): Promise<StatsRequest> {
    const cached = this.#statsReqs.get(ifname);
    if (cached !== undefined) return cached;
    const reply = await ch.request(this.#request(ifname));
    return this.#remember(ifname, linkIndexOf(reply, reply.length, what));
  }

  /**
   * All rtnl_link_stats64 counters of one interface, read synchronously:
   * one netlink round trip on the namespace's kept socket (about a
   * microsecond), no thread and no setns. RTM_GETSTATS by the link's index
   * (cached by name, refreshed on ENODEV) where the kernel has it (4.7 and
   * later), else RTM_GETLINK by name (decided once per process).
   */
  linkStatsSync(ifname?: string, opts?: { bigint?: false }): LinkStats;
  linkStatsSync(ifname: string, opts: { bigint: true }): LinkStats<bigint>;
  linkStatsSync(ifname = 'eth0', opts?: LinkStatsOptions): LinkStats<number | bigint> {
    // The hot path: a name read before, numbers, RTM_GETSTATS known to work.
    const req = this.#statsReqs.get(ifname);
    const statsOf = this.#statsOf;
    if (req !== undefined && statsOf !== undefined && opts?.bigint !== true && getStatsKnown()) {
      // The counters land in this.#counters, given to the socket at creation.
      const n = statsOf(req.index);
      if (n >= 0) return statsFromCounters(this.#counters);
    }
    return this.#linkStatsSync(ifname, opts?.bigint === true);
  }

  #linkStatsSync(ifname: string, bigint: boolean): LinkStats<number | bigint> {
    const what = `reading statistics of '${ifname}' in '${this.path}'`;
    try {
      const rtnl = this.#rtnlSync();
      if (useGetStats()) {
        for (let attempt = 0; ; attempt++) {
          const req = this.#statsReqSync(rtnl, ifname, what);
          const n = this.#readSync(rtnl, req.bytes, what, bigint);
          if (typeof n !== 'number') return n;
          if (noteGetStats(n)) break; // no RTM_GETSTATS: RTM_GETLINK from now on
          if (n === ENODEV && attempt === 0) {
            this.#statsReqs.delete(ifname);
            continue;
          }
          throw statsError(n, what);
        }
      }
      const n = this.#readSync(rtnl, this.#request(checkIfname(ifname)), what, bigint);
      if (typeof n !== 'number') return n;
      throw statsError(n, what);
    } catch (err) {
      throw this.#notFound(ifname, systemError(what, err));
    }
  }

  // One read on the kept socket: the counters, or the read's failure as a
  // number (a negative errno, STATS_MALFORMED, STATS_MISSING).
  #readSync(
    rtnl: NativeRtnlSocket,
    req: Buffer,
    what: string,
    bigint: boolean,
  ): LinkStats<number | bigint> | number {
    if (!bigint) {
      // The addon decodes the counters into a Float64Array.
      const n = rtnl.stats(req, this.#counters);
      if (n >= 0) {
        noteGetStats(n);
        return statsFromCounters(this.#counters);
      }
      return n;
    }
    this.#resp ??= Buffer.allocUnsafe(16 * 1024);
    const reply = rtnl.request(req, this.#resp);
    const buf = typeof reply === 'number' ? this.#resp : reply;
    return decodeOrErrno(buf, typeof reply === 'number' ? reply : reply.length, what, true);
  }

  /**
   * Like {@link linkStatsSync}, on the event loop: the request is sent on a
   * socket of its own that the loop watches, so no thread (not even the
   * libuv pool's) waits for the reply. The kernel normally answers within
   * the send; then the counters are there at once.
   */
  linkStats(ifname?: string, opts?: { bigint?: false }): Promise<LinkStats>;
  linkStats(ifname: string, opts: { bigint: true }): Promise<LinkStats<bigint>>;
  linkStats(ifname = 'eth0', opts?: LinkStatsOptions): Promise<LinkStats<number | bigint>> {
    const ch = this.#chan;
    const req = this.#statsReqs.get(ifname);
    // The hot path: no async function, no await, one native call.
    if (ch?.idle && req !== undefined && opts?.bigint !== true && getStatsKnown()) {
      const n = ch.statsNow(req.bytes, this.#counters);
      if (n >= 0) return Promise.resolve(statsFromCounters(this.#counters));
      if (n === native.STATS_PENDING) return this.#linkStatsAsync(ifname, false, ch.lastSeq);
      if (n === ENODEV) this.#statsReqs.delete(ifname);
    }
    return this.#linkStatsAsync(ifname, opts?.bigint === true);
  }

  // PENDING: the sequence number of a request the hot path sent, whose reply is to come.
  async #linkStatsAsync(
    ifname: string,
    bigint: boolean,
    pending?: number,
  ): Promise<LinkStats<number | bigint>> {
    const what = `reading statistics of '${ifname}' in '${this.path}'`;
    try {
      const ch = await this.#chanAsync();
      if (useGetStats()) {
        for (let attempt = 0; ; attempt++) {
          let reply: Buffer;
          if (pending !== undefined && attempt === 0) reply = await ch.reply(pending);
          else {
            reply = await ch.request((await this.#statsReqAsync(ch, ifname, what)).bytes);
          }
          const n = decodeOrErrno(reply, reply.length, what, bigint);
          if (typeof n !== 'number') {
            noteGetStats(0);
            return n;
          }
          if (noteGetStats(n)) break;
          if (n === ENODEV && attempt === 0) {
            this.#statsReqs.delete(ifname);
            continue;
          }
          throw statsError(n, what);
        }
      }
      const reply = await ch.request(this.#request(checkIfname(ifname)));
      return decodeLinkStats(reply, reply.length, what, bigint);
    } catch (err) {
      throw this.#notFound(ifname, systemError(what, err));
    }
  }

  /**
   * A sweep: the counters of IFNAME in each of NAMESPACES, read in one
   * native call per {@link LinkStatsSweep.readSync} (each request sent and
   * its reply read in turn): the way to sample many containers.
   * Made once, read as often as wanted; the namespaces stay the caller's.
   */
  static statsSweep(namespaces: readonly NetworkNamespace[], ifname = 'eth0'): LinkStatsSweep {
    checkIfname(ifname);
    const all = [...namespaces];
    const n = all.length;
    // Members that take part in the native read: a namespace that cannot
    // (closed, an unprivileged one's without a channel yet, a link missing
    // now) is read on its own each time, which also shapes its error.
    const where: number[] = [];
    const chans: StatsChannel[] = [];
    const reqs: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const ns = all[i]!;
      if (ns.#fd === undefined || (ns.#source && !ns.#chan)) continue;
      try {
        const what = `reading statistics of '${ifname}' in '${ns.path}'`;
        const req = ns.#statsReqSync(ns.#rtnlSync(), ifname, what);
        chans.push(ns.#chanSync());
        reqs.push(req.bytes);
        where.push(i);
      } catch {
        // read on its own
      }
    }
    const sweep = new native.StatsSweep(
      chans.map((c) => c.native),
      reqs,
    );
    const counters = new Float64Array(where.length * STATS_FIELDS);
    const results = new Int32Array(where.length);
    const skip = new Uint8Array(where.length);
    const batched = new Uint8Array(n);
    for (const i of where) batched[i] = 1;
    let closed = false;
    const alone = (i: number): LinkStats | PodnetError => {
      try {
        return all[i]!.linkStatsSync(ifname);
      } catch (err) {
        if (!isPodnetError(err)) throw err;
        return err;
      }
    };
    return {
      namespaces: all,
      ifname,
      readSync() {
        if (closed) throw new ClosedError(`the statistics sweep of '${ifname}'`);
        if (!useGetStats()) return all.map((_, i) => alone(i));
        for (let j = 0; j < chans.length; j++) skip[j] = chans[j]!.idle ? 0 : 1;
        sweep.read(counters, results, skip, SWEEP_TIMEOUT_MS);
        const out: (LinkStats | PodnetError)[] = new Array(n);
        for (let j = 0; j < where.length; j++) {
          const i = where[j]!;
          const r = results[j]!;
          if (r >= 0) {
            out[i] = statsFromCounters(counters, j * STATS_FIELDS);
            continue;
          }
          // ENODEV (a link made again), no RTM_GETSTATS, a timeout, a busy
          // channel: read alone, which deals with each; a new index is
          // the member's request from then on.
          out[i] = alone(i);
          const req = all[i]!.#statsReqs.get(ifname);
          if (r === ENODEV && req !== undefined) sweep.setRequest(j, req.bytes);
        }
        for (let i = 0; i < n; i++) if (!batched[i]) out[i] = alone(i);
        return out;
      },
      close() {
        closed = true;
      },
      [Symbol.dispose]() {
        closed = true;
      },
    };
  }

  /**
   * Watches the namespace's links, addresses, routes and neighbours: an
   * async iterator of typed events from the rtnetlink multicast groups, on
   * a socket opened inside the namespace and read on the event loop. With
   * `listExisting`, what exists comes first. If the socket overflows (the
   * consumer falls too far behind, or a burst of changes outruns it), the
   * stream says so with a `resync` event and lists the current state again
   * instead of losing it silently. `close()` of the namespace ends it too.
   */
  watch(opts: WatchOptions = {}): NetlinkWatch {
    const open = () =>
      this.#openOne(`opening a netlink socket in '${this.path}'`, {
        domain: AF_NETLINK,
        type: SOCK_RAW,
        protocol: NETLINK_ROUTE,
      });
    // The watch may end inside its constructor (an aborted signal).
    let made: NetlinkWatch | undefined;
    const w = new NetlinkWatch(open, `watching '${this.path}'`, opts, () => {
      if (made) this.#watches.delete(made);
    });
    made = w;
    if (!w.closed) this.#watches.add(w);
    return w;
  }

  /**
   * Opens a socket inside the namespace and returns its fd (O_CLOEXEC). The
   * caller owns it: hand it to `net.Server.listen({ fd })`, `new
   * net.Socket({ fd })`, or close it.
   */
  async socket(opts: { type: SocketType }): Promise<number> {
    const p = socketParams(opts?.type);
    return this.#openOne(`opening a ${opts.type} socket in '${this.path}'`, p);
  }

  /**
   * Opens COUNT sockets inside the namespace at once and returns their fds
   * (O_CLOEXEC), the caller owning them as with {@link socket}. One thread
   * and one namespace switch (or one request to the helper of an
   * unprivileged namespace) serve the whole batch, which is what makes it
   * cheap: the port forwarder keeps a pool filled this way. All or nothing:
   * on a failure none stays open.
   */
  async sockets(opts: { type: SocketType; count: number }): Promise<number[]> {
    const count = opts?.count;
    if (!Number.isInteger(count) || count < 1 || count > MAX_SOCKET_BATCH) {
      throw new InvalidArgumentError(
        `socket count must be an integer from 1 to ${MAX_SOCKET_BATCH}, not ${String(count)}`,
      );
    }
    const p = socketParams(opts.type);
    return this.#open(`opening ${count} ${opts.type} sockets in '${this.path}'`, p, count);
  }

  async #openOne(
    what: string,
    p: { domain: number; type: number; protocol: number },
    addr?: Buffer,
  ): Promise<number> {
    const [fd] = await this.#open(what, p, 1, addr);
    return fd as number;
  }

  // Every socket opened inside goes through here: a throwaway thread that
  // enters the namespace, or the SocketSource of openWith.
  async #open(
    what: string,
    p: { domain: number; type: number; protocol: number },
    count: number,
    addr?: Buffer,
  ): Promise<number[]> {
    const nsfd = this.#nsfd();
    if (!this.#source) {
      if (addr)
        return [await call(what, native.socketIn(nsfd, p.domain, p.type, p.protocol, addr))];
      return call(what, native.socketsIn(nsfd, p.domain, p.type, p.protocol, count));
    }
    const req = {
      domain: p.domain,
      type: p.type,
      protocol: p.protocol,
      count,
      ...(addr ? { addr } : {}),
    };
    const fds = await this.#source.openSockets(req).catch((err: unknown) => {
      throw systemError(what, err);
    });
    if (this.#fd === undefined) {
      for (const fd of fds) native.closeFd(fd);
      throw new ClosedError(`network namespace '${this.path}'`);
    }
    return fds;
  }

  /**
   * Makes `server` (a net.Server or http.Server) listen on HOST:PORT inside
   * the namespace. Resolves to the bound address once it is listening.
   */
  async listen(server: net.Server, opts: ListenOptions = {}): Promise<net.AddressInfo> {
    const host = opts.host ?? '0.0.0.0';
    const port = checkPort(opts.port ?? 0);
    const { family, addr } = encodeSockaddr(host, port);
    const p = socketParams(family === 4 ? 'tcp4' : 'tcp6');
    const fd = await this.#openOne(`binding ${host}:${port} in '${this.path}'`, p, addr);
    await new Promise<void>((resolvePromise, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      try {
        server.listen(
          { fd, ...(opts.backlog === undefined ? {} : { backlog: opts.backlog }) },
          () => {
            server.off('error', onError);
            resolvePromise();
          },
        );
      } catch (err) {
        server.off('error', onError);
        native.closeFd(fd);
        reject(err);
      }
    });
    return server.address() as net.AddressInfo;
  }

  /**
   * Connects to HOST:PORT from inside the namespace. Resolves to the
   * connected net.Socket; the connect itself runs on the event loop.
   */
  async connect(opts: ConnectOptions): Promise<net.Socket> {
    const port = checkPort(opts?.port);
    if (port === 0) throw new InvalidArgumentError('cannot connect to port 0');
    const { family } = encodeSockaddr(opts.host, port);
    const p = socketParams(family === 4 ? 'tcp4' : 'tcp6');
    const fd = await this.#openOne(`opening a socket in '${this.path}'`, p);
    const socket = new net.Socket({ fd, readable: true, writable: true });
    return new Promise((resolvePromise, reject) => {
      const onError = (err: Error): void => {
        socket.destroy();
        reject(err);
      };
      socket.once('error', onError);
      socket.connect({ port, host: opts.host }, () => {
        socket.off('error', onError);
        resolvePromise(socket);
      });
    });
  }

  /**
   * Starts COMMAND with ARGS inside the namespace, as child_process.spawn
   * does (same options, same ChildProcess, same events), from its argv
   * only: never a shell. The process is the command itself (its pid is
   * `child.pid`); a small exec helper joins the namespace and execs it, so
   * no thread of this process changes namespace. For a namespace opened
   * with {@link openWith} (an unprivileged user's own), the process joins
   * the namespace's user namespace first, and so runs as root there.
   *
   * A command that cannot run ends as Node's own do: an 'error' event
   * (ENOENT, EACCES, ... with Node's `syscall: 'spawn CMD'`, `path`,
   * `spawnargs`), no 'spawn', and exit status 127 (not found) or 126; a
   * failed setns is an 'error' with syscall 'setns'. `signal`, `timeout`
   * and `killSignal` work as for spawn. The process is killed (SIGKILL) by
   * `close()`, `remove()` or disposal of this handle, unless spawned with
   * `detached: true`; disposing the process itself kills it too.
   */
  spawn(
    command: string,
    args?: readonly string[],
    options?: NamespaceSpawnOptions,
  ): NamespaceProcess {
    const req = checkSpawnRequest(command, args, options);
    const child = spawnInNamespace(
      { fd: this.#nsfd(), path: this.path, joinUserns: this.#source !== undefined },
      req,
    );
    publish('podnet:netns:spawn', {
      path: this.path,
      command: req.command,
      args: req.args,
      pid: child.pid,
    });
    if (req.options.detached !== true && child.pid !== undefined) {
      this.#children.add(child);
      child.once('exit', () => this.#children.delete(child));
    }
    return child;
  }

  /**
   * Closes podnet's fds for the namespace, and kills (SIGKILL) the
   * processes `spawn` started in it that are not detached; the mount stays
   * (podman's closeNetNS). Idempotent.
   */
  close(): void {
    for (const child of this.#children) {
      this.#ended.push(new Promise<void>((resolve) => child.once('exit', () => resolve())));
      child.kill('SIGKILL');
    }
    this.#children.clear();
    this.#rtnl?.close();
    this.#rtnl = undefined;
    this.#statsOf = undefined;
    this.#chan?.close();
    this.#chan = undefined;
    for (const w of [...this.#watches]) w.close();
    if (this.#fd !== undefined) {
      forgotten.unregister(this);
      native.closeFd(this.#fd);
    }
    this.#fd = undefined;
  }

  /**
   * Unmounts and unlinks the mount point and closes the fds, once the
   * processes `spawn` started in it (killed as by `close()`) have exited.
   * Removing twice is a no-op. The kernel frees the namespace once nothing
   * else holds it.
   */
  async remove(): Promise<void> {
    await this.#closeAndWait();
    if (this.#removed) return;
    await call(`removing network namespace '${this.path}'`, native.removeNetns(this.path));
    this.#removed = true;
    publish('podnet:netns:remove', { path: this.path });
  }

  // close(), then the exit of every process it killed.
  async #closeAndWait(): Promise<void> {
    this.close();
    await Promise.all(this.#ended.splice(0));
  }

  /**
   * Removes the namespace if podnet mounted it, else only closes it; either
   * way resolves once the processes `spawn` started in it have exited.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.owned) await this.remove();
    else await this.#closeAndWait();
  }
}
