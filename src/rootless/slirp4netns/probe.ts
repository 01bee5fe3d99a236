import { probeOutput } from '../engine-process.js';
import { EngineMissingError, EngineProbeError } from '../errors.js';
import { findExecutable } from '../executable.js';

/** Which optional flags a slirp4netns binary understands (from its `--help`). */
export interface Slirp4netnsFeatures {
  /** Its version, e.g. `1.2.0`. */
  version: string;
  /** `--disable-host-loopback` (>= 0.3). */
  disableHostLoopback: boolean;
  /** `--mtu`. */
  mtu: boolean;
  /** `--enable-sandbox` (>= 0.4). */
  enableSandbox: boolean;
  /** `--enable-seccomp` (>= 0.4). */
  enableSeccomp: boolean;
  /** `--cidr`. */
  cidr: boolean;
  /** `--outbound-addr`. */
  outboundAddr: boolean;
  /** `--enable-ipv6`. */
  enableIpv6: boolean;
  /** `--api-socket`. */
  apiSocket: boolean;
  /** `--netns-type` (>= 0.4), needed to attach by namespace path. */
  netnsType: boolean;
}

/** What `--version` reports. */
export interface Slirp4netnsVersion {
  /** slirp4netns's own version, e.g. `1.2.0`. */
  version: string;
  /** The git commit it was built from, when printed. */
  commit?: string;
  /** The libslirp version, when printed. */
  libslirp?: string;
  /** The libseccomp version, when printed. */
  libseccomp?: string;
}

/** A probed slirp4netns binary. */
export interface Slirp4netnsBinary extends Slirp4netnsVersion {
  /** Absolute path of the binary. */
  path: string;
  /** The flags it supports. */
  features: Slirp4netnsFeatures;
}

/**
 * Parses `slirp4netns --version` output. Returns undefined when the text does
 * not start like slirp4netns's (`slirp4netns version X.Y.Z`).
 */
export function parseSlirp4netnsVersion(text: string): Slirp4netnsVersion | undefined {
  const m = /^slirp4netns version (\d+\.\d+\.\d+\S*)\s*$/m.exec(text);
  if (m === null) return undefined;
  const out: Slirp4netnsVersion = { version: m[1]! };
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)\\s*$`, 'm').exec(text)?.[1];
  const commit = field('commit');
  const libslirp = field('libslirp');
  const libseccomp = field('libseccomp');
  if (commit !== undefined) out.commit = commit;
  if (libslirp !== undefined) out.libslirp = libslirp;
  if (libseccomp !== undefined) out.libseccomp = libseccomp;
  return out;
}

/**
 * Reads the supported flags from `slirp4netns --help` output. A flag counts
 * only where it is a whole option name (`--mtu` is not found in `--mtu-x`).
 */
export function parseSlirp4netnsHelp(help: string, version: string): Slirp4netnsFeatures {
  const flags = new Set<string>();
  for (const m of help.matchAll(/(?:^|[\s,[])--([a-z0-9][a-z0-9-]*)/gm)) flags.add(m[1]!);
  return {
    version,
    disableHostLoopback: flags.has('disable-host-loopback'),
    mtu: flags.has('mtu'),
    enableSandbox: flags.has('enable-sandbox'),
    enableSeccomp: flags.has('enable-seccomp'),
    cidr: flags.has('cidr'),
    outboundAddr: flags.has('outbound-addr'),
    enableIpv6: flags.has('enable-ipv6'),
    apiSocket: flags.has('api-socket'),
    netnsType: flags.has('netns-type'),
  };
}

function runForOutput(path: string, arg: string): Promise<string> {
  return probeOutput(
    path,
    arg,
    (detail, cause) => new EngineProbeError('slirp4netns', path, detail, { cause }),
  );
}

/**
 * Locates slirp4netns (on PATH unless `path` is given) and asks it for its
 * version and flags. Throws EngineMissingError when there is no such
 * executable, EngineProbeError when it does not answer like slirp4netns.
 */
export async function probeSlirp4netns(path?: string): Promise<Slirp4netnsBinary> {
  const found = await findExecutable(path ?? 'slirp4netns');
  if (found === undefined) throw new EngineMissingError('slirp4netns', path);
  const versionText = await runForOutput(found, '--version');
  const version = parseSlirp4netnsVersion(versionText);
  if (version === undefined) {
    const start = versionText.slice(0, 200);
    throw new EngineProbeError(
      'slirp4netns',
      found,
      `'--version' did not print a slirp4netns version: ${JSON.stringify(start)}`,
    );
  }
  const help = await runForOutput(found, '--help');
  if (!/--ready-fd/.test(help) || !/--exit-fd/.test(help)) {
    // Without both fds podnet can neither know it is ready nor bound its life.
    throw new EngineProbeError('slirp4netns', found, `'--help' lists no --ready-fd/--exit-fd`);
  }
  return { ...version, path: found, features: parseSlirp4netnsHelp(help, version.version) };
}
