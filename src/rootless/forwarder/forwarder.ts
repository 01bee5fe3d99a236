// The port forwarder (rootlessport's job), as root: host TCP and UDP ports
// are forwarded to the container's own address inside its network
// namespace. The native relay (native/relay.cc) accepts, connects a socket
// opened inside the namespace and moves the bytes (splice() for TCP,
// recvmmsg/sendmmsg for UDP), so neither a connection nor its data passes
// through JavaScript. JavaScript keeps the relay's pools of namespace
// sockets filled, a batch at a time.
import { constants } from 'node:os';
import { InvalidArgumentError, PodnetError, type PodnetErrorOptions } from '../../errors.js';
import { native, type RelayPortStats, type RelayStats, systemError } from '../../native.js';
import type { NetworkNamespace } from '../../netns/namespace.js';
import { encodeSockaddr } from '../../netns/sockaddr.js';
import {
  checkPortMappings,
  expandPortMappings,
  formatHostPort,
  type PortMapping,
} from '../../ports.js';
import { checkContainerAddress } from '../container-address.js';
import type { ForwardedPort, ForwarderStats } from './job.js';
import {
  type DetachedForwarderOptions,
  type DetachedPortForwarder,
  spawnForwarderProcess,
} from './process.js';

/** A host port that is already taken: nothing of the forwarder stays listening. */
export class PortInUseError extends PodnetError {
  /** Host address that was to be bound. */
  readonly hostIP: string;
  /** Host port that was to be bound. */
  readonly hostPort: number;

  constructor(hostIP: string, hostPort: number, options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_PORT_IN_USE',
      `cannot forward ${formatHostPort(hostIP, hostPort)}: the address is already in use`,
      options,
    );
    this.hostIP = hostIP;
    this.hostPort = hostPort;
  }
}

/** Options of {@link PortForwarder.start}. */
export interface PortForwarderOptions {
  /**
   * The container's network namespace: connections are opened inside it.
   * It must stay open while the forwarder runs: once it is closed the pool
   * cannot be refilled, and new clients wait in the backlog.
   */
  netns: NetworkNamespace;
  /** Ports to publish (podman's PortMapping; ranges are expanded). */
  mappings: PortMapping[];
  /**
   * The container's own IP address inside the namespace, which every
   * connection dials. Never loopback or unspecified, in any spelling
   * (CVE-2021-20199): see {@link checkContainerAddress}.
   */
  containerAddress: string;
  /**
   * How long a UDP flow (one client address:port) lives without a datagram
   * either way before its socket in the namespace is closed; default 90 s,
   * the timeout of rootlesskit's builtin port driver (Docker's userland
   * proxy before it). A later datagram starts a new flow.
   */
  udpIdleTimeoutMs?: number;
}

const NO_PORT_TRAFFIC: RelayPortStats = {
  connections: 0,
  active: 0,
  rxBytes: 0,
  txBytes: 0,
  rxDatagrams: 0,
  txDatagrams: 0,
};

/**
 * Expands port mappings into one entry per port, checked by the ports
 * module (host port 0, any free port, allowed); a mapping without a host
 * address listens on 0.0.0.0.
 */
export function expandMappings(mappings: readonly PortMapping[]): ForwardedPort[] {
  return expandPortMappings(checkPortMappings(mappings, { freeHostPort: true })).map((p) => ({
    ...p,
    hostIP: p.hostIP === '' ? '0.0.0.0' : p.hostIP,
  }));
}

function poolKind(proto: 'tcp' | 'udp'): number {
  return proto === 'udp' ? native.POOL_UDP : native.POOL_TCP;
}

/** Binds (and, for TCP, listens on) a host port: [fd, port]. */
function bindHost(p: ForwardedPort): [number, number] {
  try {
    const type = p.protocol === 'udp' ? SOCK_DGRAM : SOCK_STREAM;
    return native.hostSocket(encodeSockaddr(p.hostIP, p.hostPort).addr, type);
  } catch (err) {
    if ((err as { errno?: unknown }).errno === constants.errno.EADDRINUSE)
      throw new PortInUseError(p.hostIP, p.hostPort, { cause: err });
    throw systemError(`listening on ${formatHostPort(p.hostIP, p.hostPort)}`, err);
  }
}

const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
/**
 * Sockets opened inside the namespace per batch, and the pool size at which
 * the next batch is asked for. A batch costs one thread and one setns
 * (about 0.1 ms for 64 sockets here); 64 cover 16 concurrent TCP clients
 * for a few milliseconds at full rate, while the next batch is opened. UDP
 * sockets serve flows, which last: fewer are kept waiting.
 */
const POOL = {
  tcp: { batch: 64, low: 32 },
  udp: { batch: 16, low: 8 },
} as const;
const DEFAULT_UDP_IDLE_TIMEOUT_MS = 90_000;
/** UDP flows per host port; at the limit the least recently used one makes room. */
const MAX_UDP_FLOWS = 4096;
/** After a failed refill, how long before the relay may ask again. */
const REFILL_RETRY_MS = 500;

/**
 * Forwards host TCP and UDP ports into a network namespace, as root.
 *
 * TCP: the native relay accepts each connection itself, takes a socket from
 * a pool of sockets already opened inside the namespace, connects it to
 * `containerAddress:containerPort` and splices bytes both ways, half-close
 * included; no JavaScript runs per connection. The pool is refilled in the
 * background, a batch per thread ({@link NetworkNamespace.sockets}); while
 * it is empty, new clients wait in the listening socket's backlog.
 *
 * UDP: each client address:port is a flow with its own pooled socket inside
 * the namespace, connected to the container's address; datagrams are
 * relayed both ways on the relay's accepting thread and replies go back to the client
 * from the host port. A flow idle for `udpIdleTimeoutMs` is closed.
 *
 * What the server in the container sees as its peer: the socket is opened
 * inside the namespace and not bound, so the kernel picks its source address
 * there; dialling the container's own address routes through the local
 * table, so the peer address is the container's address itself (never
 * 127.0.0.1: CVE-2021-20199), with an ephemeral port. The client's own
 * address is not kept (that needs the unprivileged SCM_RIGHTS helper or
 * kernel DNAT).
 *
 * While open, a forwarder keeps the event loop alive, as a listening
 * server does.
 */
export class PortForwarder implements AsyncDisposable {
  /** The ports forwarded, with the host ports actually bound. */
  readonly ports: readonly ForwardedPort[];
  readonly #netns: NetworkNamespace;
  readonly #group: number;
  readonly #family: 4 | 6;
  readonly #retries = new Set<NodeJS.Timeout>();
  // Index in the relay's `ports` of each of `ports`.
  readonly #counters: number[] = [];
  #closed = false;
  // The relay's last counters, kept when close() ends the group.
  #final: RelayStats | undefined;

  private constructor(netns: NetworkNamespace, family: 4 | 6, ports: ForwardedPort[]) {
    this.#netns = netns;
    this.#family = family;
    this.ports = ports;
    this.#group = native.relayGroup((kind) => this.#refill(kind));
  }

  /**
   * Starts listening on every host port of `mappings`. A port in use is a
   * PortInUseError naming host IP and port; on any failure nothing stays
   * listening.
   */
  static async start(opts: PortForwarderOptions): Promise<PortForwarder> {
    const wanted = expandMappings(opts.mappings);
    const { family } = checkContainerAddress(opts.containerAddress);
    const idleMs = opts.udpIdleTimeoutMs ?? DEFAULT_UDP_IDLE_TIMEOUT_MS;
    if (!Number.isInteger(idleMs) || idleMs < 1 || idleMs > 2 ** 31 - 1) {
      throw new InvalidArgumentError(
        `udpIdleTimeoutMs must be a positive integer of milliseconds, not ${String(idleMs)}`,
      );
    }
    const ports: ForwardedPort[] = [];
    const self = new PortForwarder(opts.netns, family, ports);
    const bound: number[] = [];
    try {
      // Filled first, so the first clients find sockets waiting.
      for (const proto of ['tcp', 'udp'] as const) {
        if (!wanted.some((p) => p.protocol === proto)) continue;
        const kind = poolKind(proto);
        native.relayPoolLow(self.#group, kind, POOL[proto].low);
        native.relayPoolAdd(self.#group, kind, await self.#openBatch(kind));
      }
      // Every port is bound before any is handed over: a port in use then
      // leaves nothing that ever accepted a client.
      for (const p of wanted) {
        const [fd, hostPort] = bindHost(p);
        bound.push(fd);
        ports.push({ ...p, hostPort });
      }
    } catch (err) {
      for (const fd of bound) native.closeFd(fd);
      await self.close();
      throw err;
    }
    for (const [i, fd] of bound.entries()) {
      const p = ports[i]!;
      const addr = encodeSockaddr(opts.containerAddress, p.containerPort).addr;
      self.#counters.push(
        p.protocol === 'udp'
          ? native.relayUdp(self.#group, fd, addr, idleMs, MAX_UDP_FLOWS)
          : native.relayListen(self.#group, fd, addr),
      );
    }
    return self;
  }

  /**
   * Starts a forwarder in a detached process of its own (its own process
   * group), as podman's rootlessport is, and resolves once it forwards
   * every port: it can outlive this process, and `identity` (pid and start
   * time) lets gc stop it later. The job goes as JSON on its stdin; it
   * reports the bound ports, or a typed error (a ForwarderProcessError
   * carrying its code, ERR_PODNET_PORT_IN_USE and the like), on fd 3. It
   * stops on SIGTERM, and on EOF of its exit fd when given one (`exitFd`).
   */
  static spawnDetached(opts: DetachedForwarderOptions): Promise<DetachedPortForwarder> {
    return spawnForwarderProcess(opts);
  }

  /** Counters of this forwarder's connections and flows, in all and per port. */
  stats(): ForwarderStats {
    // Undefined only if the group vanished without close(): nothing to count.
    const s = this.#final ?? native.relayStats(this.#group);
    return {
      active: s?.active ?? 0,
      connections: s?.pairs ?? 0,
      failed: s?.failed ?? 0,
      dropped: s?.dropped ?? 0,
      bytes: s?.bytes ?? 0,
      flows: s?.flows ?? 0,
      activeFlows: s?.activeFlows ?? 0,
      datagrams: s?.datagrams ?? 0,
      datagramsDropped: s?.datagramsDropped ?? 0,
      ports: this.ports.map((p, i) => {
        const c = s?.ports?.[this.#counters[i]!] ?? NO_PORT_TRAFFIC;
        return {
          ...p,
          connections: c.connections,
          active: c.active,
          rxBytes: c.rxBytes,
          txBytes: c.txBytes,
          rxDatagrams: c.rxDatagrams,
          txDatagrams: c.txDatagrams,
        };
      }),
    };
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  #openBatch(kind: number): Promise<number[]> {
    const proto = kind === native.POOL_UDP ? 'udp' : 'tcp';
    return this.#netns.sockets({ type: `${proto}${this.#family}`, count: POOL[proto].batch });
  }

  // The relay's pool ran low: opens the next batch off the JS thread. A
  // failure (the namespace closed, out of fds) leaves the clients waiting;
  // the relay may ask again after a pause.
  #refill(kind: number): void {
    if (this.#closed) return;
    this.#openBatch(kind).then(
      (fds) => {
        // False: closed meanwhile, and the relay closed the fds.
        native.relayPoolAdd(this.#group, kind, fds);
      },
      () => {
        if (this.#closed) return;
        const timer = setTimeout(() => {
          this.#retries.delete(timer);
          if (!this.#closed) native.relayPoolFailed(this.#group, kind);
        }, REFILL_RETRY_MS);
        this.#retries.add(timer);
      },
    );
  }

  /**
   * Stops listening, resets every forwarded connection and closes its
   * sockets and the pooled ones. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#retries) clearTimeout(timer);
    this.#retries.clear();
    this.#final = native.relayCloseGroup(this.#group);
  }

  /** Same as close(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
