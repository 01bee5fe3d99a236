// The port forwarder (rootlessport's job), as root: host TCP ports are
// forwarded to the container's own address inside its network namespace.
// JavaScript only accepts a connection and opens the socket inside the
// namespace; the native relay (native/relay.cc) connects it and moves the
// bytes with splice(), so no data passes through JavaScript.
import net from 'node:net';
import { InvalidArgumentError, PodnetError, type PodnetErrorOptions } from '../errors.js';
import { native, type RelayStats, systemError } from '../native.js';
import type { NetworkNamespace } from '../netns/namespace.js';
import { encodeSockaddr } from '../netns/sockaddr.js';
import type { PortMapping } from '../ports.js';

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

/** One forwarded TCP port, after ranges are expanded. */
export interface ForwardedPort {
  /** Host address listened on ('0.0.0.0' when the mapping named none). */
  hostIP: string;
  /** Host port listened on (the one the kernel picked when the mapping said 0). */
  hostPort: number;
  /** Port dialled at the container's address. */
  containerPort: number;
  /** Always 'tcp' for now: UDP forwarding is not implemented yet. */
  protocol: 'tcp';
}

/** Options of {@link PortForwarder.start}. */
export interface PortForwarderOptions {
  /** The container's network namespace: connections are opened inside it. */
  netns: NetworkNamespace;
  /** Ports to publish (podman's PortMapping; ranges are expanded). */
  mappings: PortMapping[];
  /**
   * The container's own IP address inside the namespace, which every
   * connection dials. Never a loopback address (CVE-2021-20199).
   */
  containerAddress: string;
}

/** Counters of one forwarder. */
export interface ForwarderStats {
  /** Connections being relayed now. */
  active: number;
  /** Connections handed to the relay since start. */
  connections: number;
  /** Connections that ended with an error (the container refused or reset, or close() cut them). */
  failed: number;
  /** Connections dropped before reaching the relay (no socket could be opened in the namespace). */
  dropped: number;
  /** Bytes relayed, both directions together. */
  bytes: number;
}

function formatHostPort(hostIP: string, port: number): string {
  return net.isIPv6(hostIP) ? `[${hostIP}]:${port}` : `${hostIP}:${port}`;
}

function checkPortNumber(value: unknown, what: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 65535) {
    throw new InvalidArgumentError(
      `${what} must be an integer from ${min} to 65535, not ${String(value)}`,
    );
  }
  return value;
}

/**
 * Expands port mappings into one entry per port, validated: ports in range,
 * ranges within 65535, host 0 (any free port) only without a range, host IP
 * an IP literal, no host address and port twice. UDP mappings are refused:
 * UDP forwarding is not implemented yet.
 */
export function expandMappings(mappings: readonly PortMapping[]): ForwardedPort[] {
  if (!Array.isArray(mappings)) throw new InvalidArgumentError('mappings must be an array');
  const out: ForwardedPort[] = [];
  const seen = new Set<string>();
  for (const m of mappings) {
    const protocol = m.protocol ?? 'tcp';
    if (protocol === 'udp') {
      throw new InvalidArgumentError(
        `cannot forward UDP port ${m.hostPort}: UDP forwarding is not implemented yet`,
      );
    }
    if (protocol !== 'tcp')
      throw new InvalidArgumentError(`unknown protocol '${String(protocol)}'`);
    const hostIP = m.hostIP === undefined || m.hostIP === '' ? '0.0.0.0' : m.hostIP;
    if (net.isIP(hostIP) === 0) {
      throw new InvalidArgumentError(`host IP must be an IP address, not '${hostIP}'`);
    }
    const range = m.range ?? 1;
    if (!Number.isInteger(range) || range < 1) {
      throw new InvalidArgumentError(`port range must be a positive integer, not ${String(range)}`);
    }
    const hostPort = checkPortNumber(m.hostPort, 'host port', 0);
    const containerPort = checkPortNumber(m.containerPort, 'container port', 1);
    if (hostPort === 0 && range > 1) {
      throw new InvalidArgumentError('a port range needs an explicit host port');
    }
    checkPortNumber(containerPort + range - 1, 'last container port of the range', 1);
    if (hostPort !== 0) checkPortNumber(hostPort + range - 1, 'last host port of the range', 1);
    for (let i = 0; i < range; i++) {
      const port = hostPort === 0 ? 0 : hostPort + i;
      const key = `${hostIP}|${port}`;
      if (port !== 0 && seen.has(key)) {
        throw new InvalidArgumentError(`${formatHostPort(hostIP, port)} is forwarded twice`);
      }
      seen.add(key);
      out.push({ hostIP, hostPort: port, containerPort: containerPort + i, protocol: 'tcp' });
    }
  }
  return out;
}

/** The fd of a socket libuv holds (undefined once it is closed). */
function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

async function listen(server: net.Server, hostIP: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: hostIP, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/**
 * Forwards host TCP ports into a network namespace, as root: each host
 * connection is accepted by a net.Server, a socket is opened inside the
 * namespace (on a throwaway thread) and both go to the native relay, which
 * connects the inner one to `containerAddress:containerPort` and splices
 * bytes both ways, half-close included.
 *
 * What the server in the container sees as its peer: the socket is opened
 * inside the namespace and not bound, so the kernel picks its source address
 * there; dialling the container's own address routes through the local
 * table, so the peer address is the container's address itself (never
 * 127.0.0.1: CVE-2021-20199), with an ephemeral port. The client's own
 * address is not kept (that needs the unprivileged SCM_RIGHTS helper or
 * kernel DNAT).
 *
 * UDP is not forwarded yet: a UDP mapping is an InvalidArgumentError.
 */
export class PortForwarder implements AsyncDisposable {
  /** The ports forwarded, with the host ports actually bound. */
  readonly ports: readonly ForwardedPort[];
  readonly #netns: NetworkNamespace;
  readonly #servers: net.Server[];
  readonly #group: number;
  // Client fds taken from libuv whose namespace socket is still being opened.
  readonly #pending = new Set<number>();
  #dropped = 0;
  #closed = false;
  // The relay's last counters, kept when close() ends the group.
  #final: RelayStats | undefined;

  private constructor(
    netns: NetworkNamespace,
    servers: net.Server[],
    ports: ForwardedPort[],
    group: number,
  ) {
    this.#netns = netns;
    this.#servers = servers;
    this.ports = ports;
    this.#group = group;
  }

  /**
   * Starts listening on every host port of `mappings`. A port in use is a
   * PortInUseError naming host IP and port; on any failure nothing stays
   * listening.
   */
  static async start(opts: PortForwarderOptions): Promise<PortForwarder> {
    const wanted = expandMappings(opts.mappings);
    const family = net.isIP(opts.containerAddress);
    if (family === 0) {
      throw new InvalidArgumentError(
        `container address must be an IP address, not '${String(opts.containerAddress)}'`,
      );
    }
    if (/^127\.|^0\.0\.0\.0$|^::1?$|^::ffff:127\./i.test(opts.containerAddress)) {
      throw new InvalidArgumentError(
        `container address must be the container's own address, not ${opts.containerAddress}: dialling loopback would make every connection come from loopback (CVE-2021-20199)`,
      );
    }
    const servers: net.Server[] = [];
    const ports: ForwardedPort[] = [];
    const group = native.relayGroup();
    // Filled in once every server listens; connections arriving before wait.
    let self: PortForwarder | undefined;
    const early: [net.Socket, Buffer][] = [];
    try {
      for (const p of wanted) {
        const addr = encodeSockaddr(opts.containerAddress, p.containerPort).addr;
        const server = net.createServer({ pauseOnConnect: true }, (socket) => {
          if (self) self.#accept(socket, addr, family);
          else early.push([socket, addr]);
        });
        servers.push(server);
        let hostPort: number;
        try {
          hostPort = await listen(server, p.hostIP, p.hostPort);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code === 'EADDRINUSE')
            throw new PortInUseError(p.hostIP, p.hostPort, { cause: err });
          throw systemError(`listening on ${formatHostPort(p.hostIP, p.hostPort)}`, err);
        }
        ports.push({ ...p, hostPort });
      }
    } catch (err) {
      for (const [socket] of early) socket.destroy();
      await Promise.all(servers.map(closeServer));
      native.relayCloseGroup(group);
      throw err;
    }
    self = new PortForwarder(opts.netns, servers, ports, group);
    for (const [socket, addr] of early) self.#accept(socket, addr, family);
    return self;
  }

  /** Counters of this forwarder's connections. */
  stats(): ForwarderStats {
    const s = this.#final ??
      native.relayStats(this.#group) ?? { active: 0, pairs: 0, failed: 0, bytes: 0 };
    return {
      active: s.active,
      connections: s.pairs,
      failed: s.failed,
      dropped: this.#dropped,
      bytes: s.bytes,
    };
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  // Takes the accepted socket away from libuv and hands it to the relay.
  // pauseOnConnect means libuv never read from it. The relay needs an fd of
  // its own that libuv will not close, so it gets a duplicate (O_CLOEXEC) and
  // the JS socket is destroyed: that closes libuv's fd (after removing it
  // from libuv's epoll set) but not the connection, which lives on in the
  // duplicate.
  #accept(socket: net.Socket, addr: Buffer, family: number): void {
    const fd = socketFd(socket);
    let client: number | undefined;
    try {
      if (fd !== undefined && !this.#closed) client = native.dupFd(fd);
    } catch {
      // EMFILE and the like: the client sees the connection close.
    }
    socket.destroy();
    if (client === undefined) {
      this.#dropped++;
      return;
    }
    this.#pending.add(client);
    this.#netns.socket({ type: family === 6 ? 'tcp6' : 'tcp4' }).then(
      (inner) => this.#relay(client, inner, addr),
      () => this.#drop(client),
    );
  }

  #relay(client: number, inner: number, addr: Buffer): void {
    if (!this.#pending.delete(client)) {
      native.closeFd(inner); // close() ran meanwhile and closed the client
      return;
    }
    try {
      native.relayStart(this.#group, client, inner, addr);
    } catch {
      this.#dropped++; // the relay closed both fds
    }
  }

  #drop(client: number): void {
    if (!this.#pending.delete(client)) return;
    native.closeFd(client);
    this.#dropped++;
  }

  /**
   * Stops listening, resets every forwarded connection and closes its
   * sockets. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closing = Promise.all(this.#servers.map(closeServer));
    for (const fd of this.#pending) native.closeFd(fd);
    this.#pending.clear();
    this.#final = native.relayCloseGroup(this.#group);
    await closing;
  }

  /** Same as close(). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}
