import { isAbsolute } from 'node:path';
import ipaddr from 'ipaddr.js';
import { InvalidArgumentError } from '../../errors.js';
import { checkPortMappings, type PortMapping, parsePortNumber } from '../../ports.js';

/**
 * pasta's own command-line options as the caller gave them (podman's
 * `--network pasta:...` spelling), validated and normalised by
 * {@link parsePastaOptions}.
 */
export interface PastaOptions {
  /** The options as separate argv tokens (`-t8080` becomes `-t`, `8080`). */
  args: readonly string[];
  /** Long names (without dashes) of every option given, e.g. `tcp-ports`. */
  given: ReadonlySet<string>;
  /**
   * podman's `--map-gw`: let the namespace reach the host through the
   * gateway address. Not a pasta option; it only stops podnet adding `--no-map-gw`.
   */
  mapGw: boolean;
}

/** Where pasta attaches: a mounted namespace path, or a process's namespaces. */
export type PastaTarget = { netns: string } | { pid: number };

/** What {@link buildPastaArgs} needs. */
export interface PastaArgsInput {
  /** Parsed caller options. */
  options: PastaOptions;
  /** Published ports, turned into `-t`/`-u` specs. */
  ports?: readonly PortMapping[];
  /** The namespace to attach to. */
  target: PastaTarget;
  /** pasta's log file (`--log-file`). */
  logPath: string;
  /** The pid file, written once pasta is set up (`--pid`). */
  pidFile: string;
  /** Add `--runas 0`: as root pasta otherwise becomes nobody and cannot join the namespace. */
  runAsRoot: boolean;
}

type Check = (option: string, value: string) => void;

/** One pasta option podnet accepts from callers: a flag when `value` is absent. */
interface OptionSpec {
  long: string;
  short?: string;
  value?: Check;
}

function invalid(option: string, detail: string): InvalidArgumentError {
  return new InvalidArgumentError(`pasta option '${option}': ${detail}`);
}

/** A plain IPv4 (four-part decimal) or IPv6 address, without a zone: what pasta's inet_pton takes. */
const isIp = (v: string) =>
  ipaddr.IPv4.isValidFourPartDecimal(v) || (ipaddr.IPv6.isValid(v) && !v.includes('%'));

const ip: Check = (o, v) => {
  if (!isIp(v)) throw invalid(o, `'${v}' is not an IPv4 or IPv6 address`);
};

// IFNAMSIZ is 16 with the NUL; '/', ':' and '%' would be read as separators in a port spec.
const IFNAME = /^[^\s/:%]{1,15}$/;
const ifname: Check = (o, v) => {
  if (!IFNAME.test(v)) throw invalid(o, `'${v}' is not an interface name`);
};

const mac: Check = (o, v) => {
  if (!/^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/i.test(v)) throw invalid(o, `'${v}' is not a MAC address`);
};

const intIn =
  (min: number, max: number): Check =>
  (o, v) => {
    const n = /^\d{1,10}$/.test(v) ? Number(v) : Number.NaN;
    if (!(n >= min && n <= max)) throw invalid(o, `expected an integer ${min}-${max}, got '${v}'`);
  };

const netmask: Check = (o, v) => {
  if (/^\d{1,2}$/.test(v) && Number(v) <= 32) return;
  if (
    ipaddr.IPv4.isValidFourPartDecimal(v) &&
    ipaddr.IPv4.parse(v).prefixLengthFromSubnetMask() !== null
  )
    return;
  throw invalid(o, `'${v}' is neither a prefix length nor a dot-decimal netmask`);
};

const dns: Check = (o, v) => {
  if (v !== 'none') ip(o, v);
};

const search: Check = (o, v) => {
  if (v === 'none') return;
  if (!/^[A-Za-z0-9_.-]{1,253}(?: [A-Za-z0-9_.-]{1,253})*$/.test(v)) {
    throw invalid(o, `'${v}' is not a space-separated list of domains`);
  }
};

const absolutePath: Check = (o, v) => {
  if (!isAbsolute(v)) throw invalid(o, `'${v}' is not an absolute path`);
};

function port(o: string, text: string): number {
  const n = parsePortNumber(text);
  if (n === undefined) throw invalid(o, `'${text}' is not a port number (1-65535)`);
  return n;
}

/** A port or `a-b` range; returns how many ports it covers. */
function portRange(o: string, text: string): number {
  const [from, to, extra] = text.split('-');
  if (extra !== undefined || from === undefined) throw invalid(o, `'${text}' is not a port range`);
  const lo = port(o, from);
  const hi = to === undefined ? lo : port(o, to);
  if (hi < lo) throw invalid(o, `range '${text}' ends before it starts`);
  return hi - lo + 1;
}

/**
 * Validates one `-t`/`-u`/`-T`/`-U` spec in pasta's grammar: `none`, `auto`,
 * or `[ADDR[%IF]/]ITEM[,ITEM...]` where ITEM is `PORTS[:PORTS]` or `~PORTS`
 * (an exclusion) and PORTS is `N` or `N-M`. Throws InvalidArgumentError.
 */
export function validatePastaPortSpec(option: string, spec: string): void {
  if (spec === 'none' || spec === 'auto') return;
  let list = spec;
  const slash = spec.indexOf('/');
  if (slash !== -1) {
    // The address (and interface) before '/' binds every port in the list.
    const [addr, dev, more] = spec.slice(0, slash).split('%');
    if (addr === undefined || !isIp(addr)) {
      throw invalid(option, `'${spec.slice(0, slash)}' is not an address to bind`);
    }
    if (dev !== undefined) ifname(option, dev);
    if (more !== undefined) throw invalid(option, `'${spec}' has more than one '%'`);
    list = spec.slice(slash + 1);
  }
  for (const item of list.split(',')) {
    if (item.startsWith('~')) {
      portRange(option, item.slice(1));
      continue;
    }
    const [host, target, extra] = item.split(':');
    if (extra !== undefined || host === undefined)
      throw invalid(option, `'${item}' is not a port mapping`);
    const count = portRange(option, host);
    if (target !== undefined && portRange(option, target) !== count) {
      throw invalid(option, `'${item}' maps ranges of different lengths`);
    }
  }
}

const portSpec: Check = (o, v) => validatePastaPortSpec(o, v);

/** Options a caller may pass, with how their values are checked. */
const ACCEPTED: readonly OptionSpec[] = [
  { long: 'debug', short: 'd' },
  { long: 'trace' },
  { long: 'quiet', short: 'q' },
  { long: 'stderr', short: 'e' },
  { long: 'log-size', value: intIn(1, 2 ** 31 - 1) },
  { long: 'pcap', short: 'p', value: absolutePath },
  { long: 'mtu', short: 'm', value: intIn(0, 65520) },
  { long: 'address', short: 'a', value: ip },
  { long: 'netmask', short: 'n', value: netmask },
  { long: 'mac-addr', short: 'M', value: mac },
  { long: 'gateway', short: 'g', value: ip },
  { long: 'interface', short: 'i', value: ifname },
  { long: 'outbound', short: 'o', value: ip },
  { long: 'outbound-if4', value: ifname },
  { long: 'outbound-if6', value: ifname },
  { long: 'dns', short: 'D', value: dns },
  { long: 'search', short: 'S', value: search },
  { long: 'dhcp-dns' },
  { long: 'dhcp-search' },
  { long: 'dns-forward', value: ip },
  { long: 'no-tcp' },
  { long: 'no-udp' },
  { long: 'no-icmp' },
  { long: 'no-dhcp' },
  { long: 'no-ndp' },
  { long: 'no-dhcpv6' },
  { long: 'no-ra' },
  { long: 'no-map-gw' },
  { long: 'map-gw' },
  { long: 'ipv4-only', short: '4' },
  { long: 'ipv6-only', short: '6' },
  { long: 'tcp-ports', short: 't', value: portSpec },
  { long: 'udp-ports', short: 'u', value: portSpec },
  { long: 'tcp-ns', short: 'T', value: portSpec },
  { long: 'udp-ns', short: 'U', value: portSpec },
  { long: 'ns-ifname', short: 'I', value: ifname },
  { long: 'ns-mac-addr', value: mac },
  { long: 'no-netns-quit' },
  { long: 'config-net' },
];

/** Options a caller may not give, and why. */
const REFUSED = new Map<string, string>([
  ...['foreground', 'f'].map((n) => [n, 'podnet runs pasta in the foreground itself'] as const),
  ...['log-file', 'l'].map((n) => [n, 'podnet keeps the log in a private directory'] as const),
  ...['pid', 'P'].map((n) => [n, "podnet sets it: pasta's pid file is its ready signal"] as const),
  ['runas', 'podnet chooses the user pasta runs as'],
  ...['netns', 'userns', 'netns-only'].map(
    (n) => [n, 'the namespace is given as start({ netns | pid })'] as const,
  ),
  ...['help', 'h', 'version'].map((n) => [n, 'it does not start pasta'] as const),
  ...['socket', 's', 'fd', 'F', 'one-off', '1'].map((n) => [n, 'it is a passt option'] as const),
]);

/**
 * Options refused when podnet runs as root, and why: pasta then runs as
 * root too (`--runas 0`, so it can join the namespace), and each of these
 * would have it write a file wherever the option says, with root's rights.
 * (The other file-writing options, `--log-file` and `--pid`, and `--runas`,
 * which would run it as another user, are refused for everyone.)
 */
const REFUSED_AS_ROOT = new Map<string, string>(
  ['pcap', 'p'].map((n) => [n, "as root, pasta would write the capture file with root's rights"]),
);

/** Options of {@link parsePastaOptions}. */
export interface ParsePastaOptionsOptions {
  /**
   * Whether pasta will run as root, which refuses the options that make it
   * write files ({@link REFUSED_AS_ROOT}); default: whether this process is root.
   */
  root?: boolean;
}

/** Throws for a parsed option that root may not give pasta (see {@link ParsePastaOptionsOptions.root}). */
export function checkPastaOptionsForRoot(options: PastaOptions): void {
  for (const long of options.given) {
    const why = REFUSED_AS_ROOT.get(long);
    if (why !== undefined) throw invalid(`--${long}`, why);
  }
}

function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

const BY_LONG = new Map(ACCEPTED.map((s) => [s.long, s]));
const BY_SHORT = new Map(ACCEPTED.flatMap((s) => (s.short === undefined ? [] : [[s.short, s]])));

/**
 * Parses and validates pasta options given as argv tokens (`['-t', '8080:80',
 * '--no-dhcp']`; `--opt=value` and `-tVALUE` are accepted too). Throws
 * InvalidArgumentError naming the option for anything unknown, anything
 * podnet sets itself (log file, pid file, namespace, user, foreground), passt-only options,
 * options that make a root pasta write files (`--pcap`, when `opts.root`),
 * positional arguments, control characters, or a value that does not fit
 * the option. Nothing is run.
 */
export function parsePastaOptions(
  tokens: readonly string[] = [],
  opts: ParsePastaOptionsOptions = {},
): PastaOptions {
  const root = opts.root ?? process.getuid?.() === 0;
  const args: string[] = [];
  const given = new Set<string>();
  let mapGw = false;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    // Only stray bytes, never shell syntax, could hurt here (argv, no shell),
    // but a newline or NUL in an option is always a mistake.
    if (hasControlCharacters(token)) {
      throw new InvalidArgumentError(
        `pasta option ${JSON.stringify(token)} contains control characters`,
      );
    }
    let name: string;
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (token.startsWith('--') && token.length > 2) {
      const eq = token.indexOf('=');
      name = eq === -1 ? token.slice(2) : token.slice(2, eq);
      if (eq !== -1) inline = token.slice(eq + 1);
      spec = BY_LONG.get(name);
    } else if (/^-[^-]/.test(token)) {
      name = token[1]!;
      if (token.length > 2) inline = token.slice(2);
      spec = BY_SHORT.get(name);
    } else {
      throw new InvalidArgumentError(
        `pasta option '${token}': not an option (podnet gives pasta its namespace; positional arguments are not accepted)`,
      );
    }
    const why = REFUSED.get(name) ?? (root ? REFUSED_AS_ROOT.get(name) : undefined);
    if (why !== undefined) throw invalid(token, why);
    if (spec === undefined) throw invalid(token, 'unknown option');
    const shown = spec.short === name ? `-${name}` : `--${name}`;
    if (spec.value === undefined) {
      // '-qd' style bundles read as a flag with a value: refuse rather than guess.
      if (inline !== undefined) throw invalid(token, 'takes no value');
      given.add(spec.long);
      if (spec.long === 'map-gw') mapGw = true;
      else if (spec.long !== 'config-net') args.push(shown); // podnet always adds --config-net
      continue;
    }
    let value = inline;
    if (value === undefined) {
      value = tokens[++i];
      if (value === undefined) throw invalid(shown, 'needs a value');
      if (hasControlCharacters(value))
        throw invalid(shown, 'the value contains control characters');
      if (value.startsWith('-')) throw invalid(shown, `needs a value, got '${value}'`);
    }
    spec.value(shown, value);
    given.add(spec.long);
    args.push(shown, value);
  }
  if (mapGw && given.has('no-map-gw')) {
    throw new InvalidArgumentError(
      "pasta options '--map-gw' and '--no-map-gw' contradict each other",
    );
  }
  return { args, given, mapGw };
}

/**
 * The pasta spec for one published port, e.g. `127.0.0.1/8080:80` or
 * `8000-8009:9000-9009`, and whether it goes to `-t` or `-u`. Throws
 * InvalidArgumentError for a port, range or host address out of bounds.
 */
export function pastaPortSpec(mapping: PortMapping): { option: '-t' | '-u'; spec: string } {
  // pasta needs the host port itself: a free one is chosen before (plan.ts).
  const m = checkPortMappings([mapping])[0]!;
  const range = m.range ?? 1;
  const host = m.hostIP ?? '';
  const ports = (first: number) => (range === 1 ? `${first}` : `${first}-${first + range - 1}`);
  const spec = `${host === '' ? '' : `${host}/`}${ports(m.hostPort)}:${ports(m.containerPort)}`;
  return { option: m.protocol === 'udp' ? '-u' : '-t', spec };
}

/**
 * pasta's argv (without the binary) as podnet runs it: in the foreground,
 * configuring the namespace's interface (`--config-net`), quiet, logging to
 * a file and writing a pid file once set up; then the caller's options and
 * ports; then `none` for every forwarding direction not asked for (pasta's
 * default `auto` would publish whatever listens, both ways, including the
 * host's loopback services into the namespace) and `--no-map-gw` (so the
 * gateway address does not lead to the host) unless `--map-gw` was given;
 * last the namespace. With `runAsRoot`, options that would make pasta write
 * files (`--pcap`) are refused (InvalidArgumentError).
 */
export function buildPastaArgs(input: PastaArgsInput): string[] {
  const { options } = input;
  // Options parsed elsewhere (or for another user) are checked again here.
  if (input.runAsRoot) checkPastaOptionsForRoot(options);
  const verbosity = ['quiet', 'debug', 'trace'].some((o) => options.given.has(o));
  const args = [
    '--foreground',
    '--config-net',
    ...(verbosity ? [] : ['--quiet']),
    '--log-file',
    input.logPath,
    '--pid',
    input.pidFile,
    ...(input.runAsRoot ? ['--runas', '0'] : []),
    ...options.args,
  ];
  const published = { '-t': false, '-u': false };
  for (const mapping of input.ports ?? []) {
    const { option, spec } = pastaPortSpec(mapping);
    published[option] = true;
    args.push(option, spec);
  }
  if (!published['-t'] && !options.given.has('tcp-ports')) args.push('-t', 'none');
  // Also stops pasta from forwarding UDP on the TCP ports' numbers by default.
  if (!published['-u'] && !options.given.has('udp-ports')) args.push('-u', 'none');
  if (!options.given.has('tcp-ns')) args.push('-T', 'none');
  if (!options.given.has('udp-ns')) args.push('-U', 'none');
  if (!options.mapGw && !options.given.has('no-map-gw')) args.push('--no-map-gw');
  if ('netns' in input.target) {
    // Explicit, although pasta implies it for a path without --userns.
    args.push('--netns', input.target.netns, '--netns-only');
  } else {
    args.push(String(input.target.pid));
  }
  return args;
}
