// podnet's nftables table for the native bridge driver: what the CNI
// portmap, firewall and bridge (ipMasq) plugins do with iptables, as one
// netlink batch per container setup and one per teardown. The table's
// structure is fixed (ruleset.ts); networks and containers are set and map
// elements, so nothing here finds or keeps a rule handle, and no process is
// spawned: a batch is one sendmsg on a NETLINK_NETFILTER socket.
import ipaddr from 'ipaddr.js';
import { ClosedError, InvalidArgumentError, NftBatchError, PodnetError } from '../../errors.js';
import { type NativeNfnlSocket, native, systemError } from '../../native.js';
import type { NetworkNamespace } from '../../netns/index.js';
import { isPortNumber } from '../../ports.js';
import {
  addBatch,
  networkElements,
  type PortElement,
  portElement,
  removeBatch,
  structureBatch,
  TABLE,
  type TableElement,
} from './ruleset.js';
import { getTable } from './wire.js';

/** A network as the table knows it. */
export interface FirewallNetwork {
  /** The network's name (for messages). */
  name: string;
  /** Its bridge: 127.0.0.1 ports are masqueraded only out of podnet's bridges. */
  bridge: string;
  /** Its subnets (CIDR, IPv4 or IPv6): forwarding, hairpin, masquerade. */
  subnets: readonly string[];
  /** Whether traffic from its subnets leaving them is masqueraded (the bridge plugin's ipMasq). */
  masquerade: boolean;
}

/** One published host port of a container (ranges expanded: one entry per port). */
export interface FirewallPort {
  protocol: 'tcp' | 'udp';
  /**
   * The host address it is published on: undefined, '', 0.0.0.0 or :: for
   * every local address (of the container address's family), else one.
   */
  hostIP?: string;
  /** 1-65535 (a port 0 must have been chosen before). */
  hostPort: number;
  /** The container address it goes to, inside one of the network's subnets. */
  containerIP: string;
  /** 1-65535. */
  containerPort: number;
}

/** What a container has in the table. */
export interface FirewallContainer {
  ports: readonly FirewallPort[];
}

/** What {@link PodnetTable.removeContainer} left alone. */
export interface RemoveReport {
  /** Ports whose host port is now another container's (same key, other destination). */
  foreign: FirewallPort[];
}

const EEXIST = 17;
const ENOENT = 2;
/**
 * Host ports of one container a batch carries at most. Every message is
 * answered with an ack, and all the acks of a batch must fit the socket's
 * receive buffer at once: a teardown of 32768 ports (65536 messages) does,
 * one of 65535 (131070 messages) overflows it (ENOBUFS).
 */
export const MAX_PORTS = 32768;

function bad(message: string): never {
  throw new InvalidArgumentError(message);
}

function parseAddress(text: unknown, what: string): ipaddr.IPv4 | ipaddr.IPv6 {
  if (typeof text !== 'string' || !ipaddr.isValid(text))
    bad(`${what} is not an IP address: '${String(text)}'`);
  if (ipaddr.IPv4.isValid(text) && !ipaddr.IPv4.isValidFourPartDecimal(text))
    bad(`${what} is not a dotted-quad IPv4 address: '${text}'`);
  return ipaddr.parse(text);
}

function checkPortNumber(n: unknown, what: string): number {
  if (!isPortNumber(n)) bad(`${what} must be an integer from 1 to 65535, not ${String(n)}`);
  return n;
}

// An interface name as the kernel takes it (dev_valid_name).
function checkIfname(name: unknown, what: string): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) > 15 ||
    name === '.' ||
    name === '..' ||
    /[/:\s]/.test(name)
  )
    bad(`${what} is not an interface name: '${String(name)}'`);
  return name;
}

interface CheckedNetwork {
  net: FirewallNetwork;
  subnets: [ipaddr.IPv4 | ipaddr.IPv6, number][];
}

function checkNetwork(net: FirewallNetwork): CheckedNetwork {
  if (typeof net !== 'object' || net === null) bad('a firewall network must be an object');
  if (typeof net.name !== 'string' || net.name === '') bad('a firewall network needs a name');
  checkIfname(net.bridge, `network '${net.name}': bridge`);
  if (typeof net.masquerade !== 'boolean')
    bad(`network '${net.name}': masquerade must be true or false`);
  if (!Array.isArray(net.subnets) || net.subnets.length === 0)
    bad(`network '${net.name}' needs at least one subnet`);
  const subnets = net.subnets.map((cidr: unknown) => {
    const notSubnet = () =>
      bad(`network '${net.name}': '${String(cidr)}' is not a subnet (address/prefix)`);
    if (typeof cidr !== 'string') return notSubnet();
    // parseCIDR takes '10.88/16' and octal '010.1.1.0/24' as IPv4: only dotted quads here.
    const addr = cidr.split('/')[0]!;
    if (ipaddr.IPv4.isValid(addr) && !ipaddr.IPv4.isValidFourPartDecimal(addr)) return notSubnet();
    try {
      return ipaddr.parseCIDR(cidr);
    } catch {
      return notSubnet();
    }
  });
  return { net, subnets };
}

function checkPort(n: CheckedNetwork, p: FirewallPort): PortElement {
  if (typeof p !== 'object' || p === null) bad('a published port must be an object');
  if (p.protocol !== 'tcp' && p.protocol !== 'udp')
    bad(`a published port's protocol must be tcp or udp, not ${String(p.protocol)}`);
  const hostPort = checkPortNumber(p.hostPort, 'a host port');
  const containerPort = checkPortNumber(p.containerPort, 'a container port');
  const containerIP = parseAddress(p.containerIP, 'a container address');
  const kind = containerIP.kind();
  if (!n.subnets.some(([net, len]) => net.kind() === kind && containerIP.match(net, len)))
    bad(`container address ${p.containerIP} is not in network '${n.net.name}'`);
  if (p.hostIP === undefined || p.hostIP === '')
    return { protocol: p.protocol, hostPort, containerIP, containerPort };
  const hostIP = parseAddress(p.hostIP, 'a host address');
  if (hostIP.kind() !== kind)
    bad(
      `host address ${p.hostIP} and container address ${p.containerIP} are of different families`,
    );
  const any = hostIP.toNormalizedString() === (kind === 'ipv4' ? '0.0.0.0' : '0:0:0:0:0:0:0:0');
  return {
    protocol: p.protocol,
    ...(any ? {} : { hostIP }),
    hostPort,
    containerIP,
    containerPort,
  };
}

const describePort = (p: FirewallPort): string =>
  `${p.protocol} ${p.hostIP ? `${p.hostIP} ` : ''}${p.hostPort} -> ${p.containerIP} ${p.containerPort}`;

/** One element to send, and what it stands for in an error. */
interface Step {
  element: TableElement;
  what: string;
  port?: FirewallPort;
}

function networkSteps(n: CheckedNetwork): Step[] {
  const { net } = n;
  return networkElements(net.bridge, net.subnets, net.masquerade).map((element) => ({
    element,
    what: `network '${net.name}' in set ${element.set}`,
  }));
}

function portSteps(n: CheckedNetwork, c: FirewallContainer): Step[] {
  if (typeof c !== 'object' || c === null || !Array.isArray(c.ports))
    bad('a firewall container must be an object with ports[]');
  if (c.ports.length > MAX_PORTS)
    bad(`a container publishes at most ${MAX_PORTS} host ports here, not ${c.ports.length}`);
  const steps = c.ports.map((p) => {
    const element = portElement(checkPort(n, p));
    return { element, what: `port ${describePort(p)} in map ${element.set}`, port: p };
  });
  const seen = new Set<string>();
  for (const s of steps) {
    const key = `${s.element.set} ${s.element.element.key.toString('hex')}`;
    if (seen.has(key)) bad(`port ${describePort(s.port!)} is published twice`);
    seen.add(key);
  }
  return steps;
}

/**
 * podnet's `inet podnet` table in one network namespace (this process's by
 * default), through a NETLINK_NETFILTER socket kept open. Every method is
 * one synchronous netlink batch: the kernel applies all of it or none.
 */
export class PodnetTable {
  #sock: NativeNfnlSocket | undefined;
  readonly #where: string;

  private constructor(sock: NativeNfnlSocket, where: string) {
    this.#sock = sock;
    this.#where = where;
  }

  /**
   * Opens the table, making it (structure only, no elements) if it does not
   * exist. Race-safe across processes: the making batch creates the table
   * exclusively first, so when another process made it meanwhile the kernel
   * refuses that batch whole (EEXIST) and the table stays as it was made.
   * With `netns`, the socket is opened inside that namespace (on a thread of
   * its own); without, in this process's namespace.
   */
  static async open(opts: { netns?: NetworkNamespace } = {}): Promise<PodnetTable> {
    return (await PodnetTable.#open(opts, true))!;
  }

  /**
   * Opens the table only if it exists (undefined when it does not): for
   * removing what a network left, where making the table would be a change.
   */
  static async openExisting(
    opts: { netns?: NetworkNamespace } = {},
  ): Promise<PodnetTable | undefined> {
    return PodnetTable.#open(opts, false);
  }

  static async #open(
    opts: { netns?: NetworkNamespace },
    create: boolean,
  ): Promise<PodnetTable | undefined> {
    const where = opts.netns ? `'${opts.netns.path}'` : 'this namespace';
    let sock: NativeNfnlSocket;
    try {
      sock = opts.netns
        ? new native.NfnlSocket(await opts.netns.netfilterSocket())
        : new native.NfnlSocket();
    } catch (err) {
      throw systemError(`opening a netfilter socket in ${where}`, err);
    }
    const table = new PodnetTable(sock, where);
    try {
      if (create) table.#ensureStructure();
      else if (!table.#exists()) {
        table.close();
        return undefined;
      }
    } catch (err) {
      table.close();
      throw err;
    }
    return table;
  }

  #exists(): boolean {
    const probe = this.#call((s) => s.request(getTable(TABLE)));
    if (!probe) return true;
    if (probe[1] === ENOENT) return false;
    throw new NftBatchError(
      `looking up table inet ${TABLE} in ${this.#where}`,
      'the lookup',
      probe[1],
    );
  }

  #ensureStructure(): void {
    // A look first: a refused batch costs the kernel's abort (about 10 ms),
    // a GETTABLE microseconds, and the table is there nearly always.
    const what = `making nftables table inet ${TABLE} in ${this.#where}`;
    const probe = this.#call((s) => s.request(getTable(TABLE)));
    if (!probe) return;
    if (probe[1] !== ENOENT) throw new NftBatchError(what, 'looking the table up', probe[1]);
    const msgs = structureBatch();
    const refused = this.#send(msgs);
    // Message 1 creates the table exclusively: EEXIST there is "made already".
    if (!refused || (refused[0] === 1 && refused[1] === EEXIST)) return;
    throw new NftBatchError(what, `message ${refused[0]} of ${msgs.length}`, refused[1]);
  }

  #send(msgs: Buffer[]): [number, number] | null {
    return this.#call((s) => s.batch(Buffer.concat(msgs)));
  }

  #call(fn: (s: NativeNfnlSocket) => [number, number] | null): [number, number] | null {
    const sock = this.#sock;
    if (!sock) throw new ClosedError(`nftables table inet ${TABLE} in ${this.#where}`);
    try {
      return fn(sock);
    } catch (err) {
      throw systemError(`talking to nftables table inet ${TABLE} in ${this.#where}`, err);
    }
  }

  /**
   * Adds a network's elements (its subnets, its bridge; idempotent: adding
   * them again changes nothing). {@link addContainer} does this too.
   */
  ensureNetwork(net: FirewallNetwork): void {
    const steps = networkSteps(checkNetwork(net));
    this.#add(`adding network '${net.name}'`, steps);
  }

  /**
   * Adds a container's published ports, and its network's elements, in one
   * batch. Idempotent for the same ports; a host port another container
   * holds (same address, protocol and port, another destination) is an
   * ERR_PODNET_PORT_IN_USE and nothing of the batch is applied. Bad input
   * is an InvalidArgumentError before anything is sent.
   */
  addContainer(net: FirewallNetwork, container: FirewallContainer): void {
    const n = checkNetwork(net);
    const steps = [...networkSteps(n), ...portSteps(n, container)];
    this.#add(`publishing ports on network '${net.name}'`, steps);
  }

  #add(what: string, steps: Step[]): void {
    let todo = steps;
    for (let attempt = 0; ; attempt++) {
      const refused = this.#send(addBatch(todo.map((s) => s.element)));
      if (!refused) return;
      const [index, errno] = refused;
      // A table flushed away by another tool (nft flush ruleset): make it again, once.
      if (errno === ENOENT && attempt === 0) {
        this.#ensureStructure();
        continue;
      }
      const step = todo[index - 1];
      if (errno === EEXIST && step?.port) {
        throw new PodnetError(
          'ERR_PODNET_PORT_IN_USE',
          `${what}: host port ${describePort(step.port)} is published by another container`,
        );
      }
      // A network element the kernel refuses as overlapping one already
      // there (a subnet inside another's interval, left by a network made
      // or removed without podnet): that address range is in the set
      // already, which is what the element is for; the rest goes on.
      if (errno === EEXIST && step && !step.port) {
        todo = todo.filter((s) => s !== step);
        continue;
      }
      throw new NftBatchError(what, step?.what ?? `message ${index}`, errno);
    }
  }

  /**
   * Removes a container's published ports in one batch. A port already
   * gone is no error (so an undo after a crash can run again); a host port
   * that another container holds now is left alone and named in the report.
   * The network's elements stay (see {@link removeNetwork}).
   */
  removeContainer(net: FirewallNetwork, container: FirewallContainer): RemoveReport {
    const n = checkNetwork(net);
    const left = this.#remove(`removing ports of network '${net.name}'`, portSteps(n, container));
    return { foreign: left.map((s) => s.port!) };
  }

  /**
   * Removes a network's elements (when its last container is gone and the
   * network with it). Absent elements are no error.
   */
  removeNetwork(net: FirewallNetwork): void {
    this.#remove(`removing network '${net.name}'`, networkSteps(checkNetwork(net)));
  }

  // Sends the remove batch, dropping each element the kernel shows to be
  // another's (EEXIST on its add: see removeBatch) and sending again.
  // Returns the elements dropped.
  #remove(what: string, steps: Step[]): Step[] {
    let todo = steps;
    const foreign: Step[] = [];
    while (todo.length) {
      const refused = this.#send(removeBatch(todo.map((s) => s.element)));
      if (!refused) break;
      const [index, errno] = refused;
      // No table, or no such set: nothing of ours is there to remove.
      if (errno === ENOENT) break;
      const i = Math.floor((index - 1) / 2);
      const step = todo[i];
      if (errno === EEXIST && step && (index - 1) % 2 === 0) {
        foreign.push(step);
        todo = todo.filter((_, j) => j !== i);
        continue;
      }
      throw new NftBatchError(what, step?.what ?? `message ${index}`, errno);
    }
    return foreign;
  }

  /** Closes the socket; the table and its elements stay. */
  close(): void {
    this.#sock?.close();
    this.#sock = undefined;
  }
}
