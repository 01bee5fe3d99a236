// Parsing and validation of the `podnet up` flags, kept pure (strings in,
// SetupOptions out, InvalidArgumentError naming the bad value) so every rule
// is unit-tested without root and nothing is created before the input is known
// to be good.
import { isAbsolute, resolve } from 'node:path';
import ipaddr from 'ipaddr.js';
import { nameProblem } from '../cni/validate.js';
import { InvalidArgumentError } from '../errors.js';
import type { NetworkMode, SetupOptions } from '../network/types.js';
import { checkPortMappings, parsePortSpec } from '../ports.js';

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

function bad(message: string): never {
  throw new InvalidArgumentError(message);
}

function checkName(what: string, value: string): string {
  const problem = nameProblem(value);
  if (problem !== undefined) bad(`invalid ${what} '${value}': ${problem}`);
  return value;
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
    // One check for every mapping and every pair (ports.ts), as the plan makes again.
    const mappings = checkPortMappings(flags.publish.map(parsePortSpec), { freeHostPort: true });
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
