// Parsing and validation of the `podnet up` flags, kept pure (strings in,
// SetupOptions out, InvalidArgumentError naming the bad value) so every rule
// is unit-tested without root and nothing is created before the input is known
// to be good.
import { isAbsolute, resolve } from 'node:path';
import ipaddr from 'ipaddr.js';
import { nameProblem } from '../cni/validate.js';
import { InvalidArgumentError } from '../errors.js';
import type { NetworkMode, PortMapping, SetupOptions } from '../network/types.js';

/**
 * The `podnet up` flags as typed on the command line, every value a string
 * (undefined: not given).
 */
export interface UpFlags {
  name?: string | undefined;
  pod?: string | undefined;
  /** `--network`, repeatable; order is interface order (eth0, eth1, ...). */
  network?: string[] | undefined;
  /** `-p/--publish`, repeatable. */
  publish?: string[] | undefined;
  ip?: string | undefined;
  mac?: string | undefined;
  pid?: string | undefined;
  netns?: string | undefined;
  mode?: string | undefined;
}

/** A `--mode` value split into the mode and podman-style options. */
export interface ParsedMode {
  mode: NetworkMode;
  modeOptions: string[];
}

const PORT_SPEC_HELP = '[HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]';

function bad(message: string): never {
  throw new InvalidArgumentError(message);
}

function checkName(what: string, value: string): string {
  const problem = nameProblem(value);
  if (problem !== undefined) bad(`invalid ${what} '${value}': ${problem}`);
  return value;
}

/** A decimal port 1-65535; parseInt alone would accept '80abc' or '0x50'. */
function port(text: string, spec: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) bad(`invalid port '${text}' in '${spec}': must be 1-65535`);
  return n;
}

/** A port or an inclusive range `A-B`, as [first, count]. */
function portRange(text: string, spec: string): [number, number] {
  const dash = text.indexOf('-');
  if (dash === -1) return [port(text, spec), 1];
  const first = port(text.slice(0, dash), spec);
  const last = port(text.slice(dash + 1), spec);
  if (last < first) bad(`invalid port range '${text}' in '${spec}': end before start`);
  return [first, last - first + 1];
}

function hostAddress(text: string, spec: string): string {
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
 * Parses one `-p` value, `[HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]`. Ports may be
 * ranges of equal length (`8080-8085:80-85`); IPv6 host addresses go in
 * brackets (`[::1]:8080:80`), since their colons would be ambiguous otherwise.
 */
export function parsePortMapping(spec: string): PortMapping {
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
  // The last two colon-separated fields are the ports; what precedes them
  // (which may itself contain colons, inside brackets) is the host address.
  const ctrColon = rest.lastIndexOf(':');
  const hostColon = ctrColon <= 0 ? -1 : rest.lastIndexOf(':', ctrColon - 1);
  if (ctrColon === -1) bad(`invalid port mapping '${spec}': expected ${PORT_SPEC_HELP}`);
  const hostIPText = hostColon === -1 ? undefined : rest.slice(0, hostColon);
  const [hostPort, hostCount] = portRange(rest.slice(hostColon + 1, ctrColon), spec);
  const [containerPort, ctrCount] = portRange(rest.slice(ctrColon + 1), spec);
  if (hostCount !== ctrCount) {
    bad(
      `invalid port mapping '${spec}': host range has ${hostCount} ports, container range ${ctrCount}`,
    );
  }
  if (hostIPText === '') bad(`invalid port mapping '${spec}': empty host IP`);
  const mapping: PortMapping = { hostPort, containerPort, protocol };
  if (hostIPText !== undefined) mapping.hostIP = hostAddress(hostIPText, spec);
  if (hostCount > 1) mapping.range = hostCount;
  return mapping;
}

/** Two mappings that would bind the same host port (same protocol, overlapping addresses). */
function clash(a: PortMapping, b: PortMapping): boolean {
  if (a.protocol !== b.protocol) return false;
  if (a.hostIP !== undefined && b.hostIP !== undefined && a.hostIP !== b.hostIP) return false;
  const aEnd = a.hostPort + (a.range ?? 1);
  const bEnd = b.hostPort + (b.range ?? 1);
  return a.hostPort < bEnd && b.hostPort < aEnd;
}

const SLIRP_OPTION = /^[a-z][a-z0-9_]*=[^,=]*$/;

/**
 * Parses a `--mode` value: `bridge`, `none`, `container:ID`, `ns:PATH`, or
 * `slirp4netns`/`pasta` optionally followed by `:OPT,...`, podman's spelling
 * (`slirp4netns:allow_host_loopback=true,port_handler=slirp4netns`).
 */
export function parseMode(spec: string): ParsedMode {
  const colon = spec.indexOf(':');
  const kind = colon === -1 ? spec : spec.slice(0, colon);
  const arg = colon === -1 ? undefined : spec.slice(colon + 1);
  switch (kind) {
    case 'bridge':
    case 'none':
      if (arg !== undefined) bad(`invalid mode '${spec}': '${kind}' takes no options`);
      return { mode: kind, modeOptions: [] };
    case 'container':
      if (!arg) bad(`invalid mode '${spec}': expected container:ID`);
      return { mode: { container: checkName('container ID', arg) }, modeOptions: [] };
    case 'ns':
      if (!arg) bad(`invalid mode '${spec}': expected ns:PATH`);
      return { mode: { path: resolve(arg) }, modeOptions: [] };
    case 'slirp4netns':
    case 'pasta': {
      if (arg === undefined) return { mode: kind, modeOptions: [] };
      const modeOptions = arg.split(',');
      for (const o of modeOptions) {
        if (o === '') bad(`invalid mode '${spec}': empty option`);
        // slirp4netns options are all OPT=VAL; pasta's are its own command-line
        // arguments (`-t,8080`), which pasta itself validates.
        if (kind === 'slirp4netns' && !SLIRP_OPTION.test(o)) {
          bad(`invalid slirp4netns option '${o}' in '${spec}': expected OPT=VALUE`);
        }
      }
      return { mode: kind, modeOptions };
    }
    default:
      return bad(
        `invalid mode '${spec}': bridge, none, container:ID, ns:PATH, slirp4netns[:OPT=VAL,...] or pasta[:OPT,...]`,
      );
  }
}

function modeName(mode: NetworkMode): string {
  if (typeof mode === 'string') return mode;
  if ('pid' in mode) return '--pid';
  if ('path' in mode) return 'a namespace path';
  return 'container:ID';
}

/**
 * Turns `podnet up ID` and its flags into SetupOptions, or throws an
 * InvalidArgumentError naming the bad value. `--pid P` is mode `{ pid: P }`,
 * `--netns PATH` mode `{ path }`; they exclude each other and `--mode`.
 * Networks, static IP and MAC need a CNI mode (bridge or --pid); published
 * ports need a namespace podnet wires up (not none, a path or a container).
 */
export function parseUpArgs(id: string, flags: UpFlags): SetupOptions {
  checkName('container ID', id);
  const opts: SetupOptions = { id, name: checkName('name', flags.name ?? id) };
  if (flags.pod !== undefined) opts.pod = checkName('pod name', flags.pod);

  const modeFlags = (['mode', 'pid', 'netns'] as const).filter((k) => flags[k] !== undefined);
  if (modeFlags.length > 1) bad(`--${modeFlags.join(' and --')} exclude each other`);
  let parsed: ParsedMode = { mode: 'bridge', modeOptions: [] };
  if (flags.mode !== undefined) parsed = parseMode(flags.mode);
  if (flags.pid !== undefined) {
    const pid = /^\d{1,10}$/.test(flags.pid) ? Number(flags.pid) : 0;
    if (!(pid >= 1 && pid <= 2 ** 31 - 1)) bad(`invalid --pid '${flags.pid}': a process ID`);
    parsed = { mode: { pid }, modeOptions: [] };
  }
  if (flags.netns !== undefined) {
    if (flags.netns === '') bad('invalid --netns: empty path');
    const path = isAbsolute(flags.netns) ? flags.netns : resolve(flags.netns);
    parsed = { mode: { path }, modeOptions: [] };
  }
  // Without a mode flag Networking picks: bridge as root, pasta or slirp4netns rootless.
  if (modeFlags.length > 0) opts.mode = parsed.mode;
  if (parsed.modeOptions.length > 0) opts.modeOptions = parsed.modeOptions;
  const cni = parsed.mode === 'bridge' || (typeof parsed.mode === 'object' && 'pid' in parsed.mode);

  if (flags.network !== undefined && flags.network.length > 0) {
    if (!cni) bad(`--network needs mode bridge or --pid, not ${modeName(parsed.mode)}`);
    const seen = new Set<string>();
    for (const n of flags.network) {
      checkName('network name', n);
      if (seen.has(n)) bad(`network '${n}' given twice`);
      seen.add(n);
    }
    opts.networks = [...seen];
  }

  if (flags.ip !== undefined) {
    if (!cni) bad(`--ip needs mode bridge or --pid, not ${modeName(parsed.mode)}`);
    const valid =
      ipaddr.IPv4.isValidFourPartDecimal(flags.ip) ||
      (flags.ip.includes(':') && ipaddr.IPv6.isValid(flags.ip));
    if (!valid) bad(`invalid --ip '${flags.ip}': an IPv4 or IPv6 address`);
    opts.staticIP = flags.ip;
  }

  if (flags.mac !== undefined) {
    if (!cni) bad(`--mac needs mode bridge or --pid, not ${modeName(parsed.mode)}`);
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(flags.mac)) {
      bad(`invalid --mac '${flags.mac}': expected six hex octets, 02:42:ac:11:00:02`);
    }
    // The kernel refuses a multicast address (low bit of the first octet) on an interface.
    if (Number.parseInt(flags.mac.slice(0, 2), 16) & 1) {
      bad(`invalid --mac '${flags.mac}': a multicast address`);
    }
    opts.staticMAC = flags.mac.toLowerCase();
  }

  if (flags.publish !== undefined && flags.publish.length > 0) {
    const m = parsed.mode;
    if (m === 'none' || (typeof m === 'object' && !('pid' in m))) {
      bad(`-p needs a network podnet sets up, not ${modeName(m)}`);
    }
    const mappings: PortMapping[] = [];
    for (const spec of flags.publish) {
      const p = parsePortMapping(spec);
      const other = mappings.find((q) => clash(p, q));
      if (other !== undefined) {
        bad(`port mapping '${spec}' overlaps host port ${other.hostPort}/${other.protocol}`);
      }
      mappings.push(p);
    }
    opts.portMappings = mappings;
  }
  return opts;
}

/**
 * Parses `--interval SECONDS` of `stats --watch`, in seconds as podman and
 * top take it, fractions allowed (`0.5`), from 0.01 to 3600; returns
 * milliseconds.
 */
export function parseInterval(text: string): number {
  const seconds = /^(\d{1,4}(\.\d{0,6})?|\.\d{1,6})$/.test(text) ? Number(text) : Number.NaN;
  if (!(seconds >= 0.01 && seconds <= 3600)) {
    bad(`invalid --interval '${text}': seconds between 0.01 and 3600, e.g. 0.5`);
  }
  return Math.round(seconds * 1000);
}
