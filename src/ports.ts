// Published ports, in one place: the PortMapping type, the parser of
// podman's `-p` forms, the validator, the range expander, the clash
// detector and the choice of a free host port. Every layer that handles
// ports (the CLI, the plan, CNI's portMappings capability, inspect, the
// forwarder, slirp4netns and pasta) imports what it needs from here and
// checks nothing itself. It sits below all of them, so no lower layer
// imports an upper one.
import dgram from 'node:dgram';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import * as v from 'valibot';
import { InvalidArgumentError } from './errors.js';

/** One published port: host IP:port -> container port, podman's PortMapping. */
export interface PortMapping {
  /** Host address to bind ('' or undefined: all addresses). */
  hostIP?: string;
  /**
   * Host port (1-65535), or 0: a free port, chosen when the setup is planned
   * (or, for the port forwarder started alone, by the kernel when it binds).
   */
  hostPort: number;
  /** Port inside the container. */
  containerPort: number;
  /** 'tcp' (default) or 'udp'. */
  protocol?: 'tcp' | 'udp';
  /** Number of consecutive ports from hostPort/containerPort (default 1). */
  range?: number;
}

/** One host port after ranges are expanded: what one socket binds. */
export interface ExpandedPort {
  /** Host address as the mapping gave it ('' when it named none). */
  hostIP: string;
  /** Host port (0: any free one). */
  hostPort: number;
  /** Port inside the container. */
  containerPort: number;
  /** The protocol. */
  protocol: 'tcp' | 'udp';
}

/**
 * The shape of a PortMapping in a helper process's job (JSON from another
 * process): checked for shape here, for meaning by {@link checkPortMappings}
 * where it is used.
 */
export const PortMappingSchema = v.strictObject({
  hostIP: v.exactOptional(v.string()),
  hostPort: v.number(),
  containerPort: v.number(),
  protocol: v.exactOptional(v.picklist(['tcp', 'udp'])),
  range: v.exactOptional(v.number()),
});

const MAX_PORT = 65535;

function bad(message: string): never {
  throw new InvalidArgumentError(message);
}

/** Whether `n` is a port number, 1-65535 (0 too when `zero`). */
export function isPortNumber(n: unknown, zero = false): n is number {
  return Number.isInteger(n) && (n as number) >= (zero ? 0 : 1) && (n as number) <= MAX_PORT;
}

/**
 * A decimal port 1-65535 written as text, or undefined; stricter than
 * parseInt, which would take '80abc' or '0x50'.
 */
export function parsePortNumber(text: string): number | undefined {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  return isPortNumber(n) ? n : undefined;
}

/** `host:port`, IPv6 in brackets, for messages. */
export function formatHostPort(hostIP: string, port: number): string {
  return net.isIPv6(hostIP) ? `[${hostIP}]:${port}` : `${hostIP}:${port}`;
}

/** A mapping written back in the `-p` syntax (`127.0.0.1:8080-8081:80-81/tcp`), for messages. */
export function formatPortMapping(m: PortMapping): string {
  const range = m.range ?? 1;
  const ports = (p: number): string => (range > 1 ? `${p}-${p + range - 1}` : `${p}`);
  // Also for a mapping not yet checked, whose host IP may be anything.
  const hostIP = m.hostIP === undefined ? '' : String(m.hostIP);
  const ip = hostIP === '' ? '' : hostIP.includes(':') ? `[${hostIP}]:` : `${hostIP}:`;
  const host = m.hostPort === 0 ? (ip === '' ? '' : `${ip}:`) : `${ip}${ports(m.hostPort)}:`;
  return `${host}${ports(m.containerPort)}/${m.protocol ?? 'tcp'}`;
}

/** A port or an inclusive range `A-B` of `-p`, as [first, count]. */
function parsePortRange(text: string, spec: string): [number, number] {
  const parts = text.split('-');
  if (parts.length > 2) bad(`invalid port range '${text}' in '${spec}'`);
  const [first, last = first] = parts.map(
    (t) => parsePortNumber(t) ?? bad(`invalid port '${t}' in '${spec}': must be 1-65535`),
  ) as [number, number?];
  if (last < first) bad(`invalid port range '${text}' in '${spec}': end before start`);
  return [first, last - first + 1];
}

function parseHostIP(text: string, spec: string): string {
  if (text === '') bad(`invalid port mapping '${spec}': empty host IP`);
  if (text.startsWith('[') && text.endsWith(']')) {
    const v6 = text.slice(1, -1);
    if (!ipaddr.IPv6.isValid(v6)) bad(`invalid host IPv6 address '${v6}' in '${spec}'`);
    return v6;
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return text;
  if (ipaddr.IPv6.isValid(text))
    bad(`IPv6 host address '${text}' in '${spec}' needs brackets: [${text}]`);
  return bad(`invalid host IP '${text}' in '${spec}'`);
}

/**
 * Parses one `-p` value in podman's forms: `CTRPORT` and `HOSTIP::CTRPORT`
 * (a free host port, chosen at setup: hostPort 0), `HOSTPORT:CTRPORT`,
 * `HOSTIP:HOSTPORT:CTRPORT`, each with an optional `/tcp` or `/udp`. Ports
 * may be ranges of equal length (`8080-8085:80-85`); IPv6 host addresses go
 * in brackets (`[::1]:8080:80`), since their colons would be ambiguous
 * otherwise. The result is then checked like any mapping
 * ({@link checkPortMappings}): a container range needs a host range.
 */
export function parsePortSpec(spec: string): PortMapping {
  let rest = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash !== -1) {
    const proto = rest.slice(slash + 1).toLowerCase();
    if (proto !== 'tcp' && proto !== 'udp')
      bad(`invalid protocol '${proto}' in '${spec}': tcp or udp`);
    protocol = proto;
    rest = rest.slice(0, slash);
  }
  // The container port is the last field, the host port (possibly empty
  // after a host IP) the one before; what precedes them, which may itself
  // hold colons inside brackets, is the host address.
  const ctrColon = rest.lastIndexOf(':');
  const hostColon = ctrColon <= 0 ? -1 : rest.lastIndexOf(':', ctrColon - 1);
  const hostIP = hostColon === -1 ? undefined : parseHostIP(rest.slice(0, hostColon), spec);
  const hostPortText = ctrColon === -1 ? '' : rest.slice(hostColon + 1, ctrColon);
  // Left out (CTRPORT) or empty (HOSTIP::CTRPORT): a free port. An empty
  // host port with no host IP before it (`:80`) is a typo, not a choice.
  const free = ctrColon === -1 || (hostPortText === '' && hostColon !== -1);
  const [hostPort, hostCount] = free ? [0, 0] : parsePortRange(hostPortText, spec);
  const [containerPort, ctrCount] = parsePortRange(rest.slice(ctrColon + 1), spec);
  if (!free && hostCount !== ctrCount) {
    bad(
      `invalid port mapping '${spec}': host range has ${hostCount} ports, container range ${ctrCount}`,
    );
  }
  const mapping: PortMapping = { hostPort, containerPort, protocol };
  if (hostIP !== undefined) mapping.hostIP = hostIP;
  if (ctrCount > 1) mapping.range = ctrCount;
  return mapping;
}

/** Options of {@link checkPortMappings}. */
export interface PortCheckOptions {
  /**
   * Whether host port 0 (a free port) is accepted. The plan and the
   * forwarder take it; slirp4netns and pasta need the port itself.
   */
  freeHostPort?: boolean;
}

/**
 * Checks one mapping and returns a copy: protocol tcp (the default) or
 * udp, ports 1-65535 with their ranges, host port 0 only when allowed and
 * without a range, host IP empty or an IP literal. `what` names it in the
 * error.
 */
function checkPortMapping(m: PortMapping, what: string, opts: PortCheckOptions): PortMapping {
  if (typeof m !== 'object' || m === null) bad(`${what} must be an object`);
  what = `${what} '${formatPortMapping(m)}'`;
  const range = m.range ?? 1;
  if (!Number.isInteger(range) || range < 1)
    bad(`${what}: range must be a positive integer, not ${String(range)}`);
  const free = opts.freeHostPort === true;
  if (!isPortNumber(m.hostPort, free))
    bad(
      `${what}: host port must be an integer from ${free ? 0 : 1} to 65535, not ${String(m.hostPort)}`,
    );
  if (!isPortNumber(m.containerPort))
    bad(
      `${what}: container port must be an integer from 1 to 65535, not ${String(m.containerPort)}`,
    );
  if (m.hostPort === 0 && range > 1) bad(`${what}: a port range needs an explicit host port range`);
  if (m.hostPort !== 0 && m.hostPort + range - 1 > MAX_PORT)
    bad(`${what}: the host range ${m.hostPort}-${m.hostPort + range - 1} ends past 65535`);
  if (m.containerPort + range - 1 > MAX_PORT) {
    bad(
      `${what}: the container range ${m.containerPort}-${m.containerPort + range - 1} ends past 65535`,
    );
  }
  if (m.protocol !== undefined && m.protocol !== 'tcp' && m.protocol !== 'udp')
    bad(`${what}: protocol must be tcp or udp, not '${String(m.protocol)}'`);
  if (
    m.hostIP !== undefined &&
    (typeof m.hostIP !== 'string' || (m.hostIP !== '' && !net.isIP(m.hostIP)))
  )
    bad(`${what}: host IP '${String(m.hostIP)}' is not an IP address`);
  const out: PortMapping = { hostPort: m.hostPort, containerPort: m.containerPort };
  if (m.hostIP !== undefined) out.hostIP = m.hostIP;
  if (m.protocol !== undefined) out.protocol = m.protocol;
  if (m.range !== undefined) out.range = m.range;
  return out;
}

/** Which host addresses a mapping binds: all, all of one family, or one. */
function hostScope(hostIP: string | undefined): 'all' | 'all4' | 'all6' | string {
  if (hostIP === undefined || hostIP === '') return 'all';
  const ip = ipaddr.parse(hostIP);
  if (ip.range() === 'unspecified') return ip.kind() === 'ipv4' ? 'all4' : 'all6';
  return ip.toNormalizedString();
}

function scopesOverlap(a: string, b: string): boolean {
  if (a === b || a === 'all' || b === 'all') return true;
  // A wildcard of one family takes every address of it; '::' binds both
  // families on Linux (IPV6_V6ONLY off), as the empty host IP does.
  const v4 = (s: string): boolean => s === 'all4' || (s !== 'all6' && !s.includes(':'));
  if (a === 'all6' || b === 'all6') return true;
  if (a === 'all4') return v4(b);
  if (b === 'all4') return v4(a);
  return false;
}

/**
 * Two mappings that would bind one host port: the same protocol, host
 * ranges that overlap, and host addresses that overlap (the same address,
 * or a wildcard such as 0.0.0.0 or none that takes the other's). Host port
 * 0 clashes with nothing: each gets a port of its own.
 */
export function portMappingsClash(a: PortMapping, b: PortMapping): boolean {
  if ((a.protocol ?? 'tcp') !== (b.protocol ?? 'tcp')) return false;
  if (a.hostPort === 0 || b.hostPort === 0) return false;
  const aEnd = a.hostPort + (a.range ?? 1);
  const bEnd = b.hostPort + (b.range ?? 1);
  if (a.hostPort >= bEnd || b.hostPort >= aEnd) return false;
  return scopesOverlap(hostScope(a.hostIP), hostScope(b.hostIP));
}

/**
 * Validates a list of mappings (see {@link PortMapping}) and that no two
 * bind the same host port; returns copies. Throws InvalidArgumentError
 * naming the mapping, in the `-p` syntax, and what is wrong with it.
 */
export function checkPortMappings(
  list: readonly PortMapping[],
  opts: PortCheckOptions = {},
): PortMapping[] {
  if (!Array.isArray(list)) bad('port mappings must be an array');
  const out: PortMapping[] = [];
  for (const [i, m] of list.entries()) {
    const checked = checkPortMapping(m, `port mapping ${i}`, opts);
    const other = out.find((o) => portMappingsClash(o, checked));
    if (other !== undefined) {
      bad(
        `port mapping '${formatPortMapping(checked)}' overlaps '${formatPortMapping(other)}': both bind host port ${Math.max(checked.hostPort, other.hostPort)}/${checked.protocol ?? 'tcp'}`,
      );
    }
    out.push(checked);
  }
  return out;
}

/** One entry per host port, ranges expanded, in order; the list as checked already. */
export function expandPortMappings(list: readonly PortMapping[]): ExpandedPort[] {
  return list.flatMap((m) =>
    Array.from({ length: m.range ?? 1 }, (_, i) => ({
      hostIP: m.hostIP ?? '',
      hostPort: m.hostPort === 0 ? 0 : m.hostPort + i,
      containerPort: m.containerPort + i,
      protocol: m.protocol ?? 'tcp',
    })),
  );
}

/** A bound socket holding a port while the others are chosen. */
interface Held {
  port: number;
  close(): void;
}

async function hold(hostIP: string, protocol: 'tcp' | 'udp'): Promise<Held> {
  if (hostIP !== '') return holdOn(hostIP, protocol);
  // All addresses: '::' takes IPv4 too, where the host has IPv6 at all.
  return holdOn('::', protocol).catch(() => holdOn('0.0.0.0', protocol));
}

function holdOn(host: string, protocol: 'tcp' | 'udp'): Promise<Held> {
  return new Promise((resolve, reject) => {
    if (protocol === 'udp') {
      const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      s.once('error', reject);
      s.bind(0, host, () => resolve({ port: s.address().port, close: () => s.close() }));
    } else {
      const s = net.createServer();
      s.once('error', reject);
      s.listen({ port: 0, host, exclusive: true }, () => {
        resolve({ port: (s.address() as net.AddressInfo).port, close: () => s.close() });
      });
    }
  });
}

/**
 * Replaces every host port 0 of a checked list with a free port on its
 * host address, as podman does: binds port 0 there, reads the port the
 * kernel gave, and closes the socket once every port is chosen (so two
 * choices never meet). A port that clashes with another mapping of the
 * list is passed over. Binding an address that is not this host's is an
 * InvalidArgumentError.
 */
export async function chooseFreeHostPorts(list: readonly PortMapping[]): Promise<PortMapping[]> {
  const held: Held[] = [];
  try {
    const out: PortMapping[] = [];
    for (const [i, m] of list.entries()) {
      if (m.hostPort !== 0) {
        out.push(m);
        continue;
      }
      for (;;) {
        let h: Held;
        try {
          h = await hold(m.hostIP ?? '', m.protocol ?? 'tcp');
        } catch (err) {
          throw new InvalidArgumentError(
            `port mapping '${formatPortMapping(m)}': no free host port on '${m.hostIP || '::'}': ${(err as Error).message}`,
            { cause: err },
          );
        }
        held.push(h);
        const chosen = { ...m, hostPort: h.port };
        if (!list.some((o, j) => j !== i && portMappingsClash(o, chosen))) {
          out.push(chosen);
          break;
        }
      }
    }
    return out;
  } finally {
    for (const h of held) h.close();
  }
}
