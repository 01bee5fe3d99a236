// Finding pasta and judging what it can do from its `--version` and
// `--help`: whether it splices loopback clients into the namespace's
// loopback decides whether podnet's forwarder publishes the ports.
import { stat } from 'node:fs/promises';
import { probeOutput } from '../engine-process.js';
import { EngineMissingError, EngineProbeError } from '../errors.js';
import { findExecutable } from '../executable.js';

/** A probed pasta binary. */
export interface PastaBinary {
  /** Absolute path of the binary. */
  path: string;
  /**
   * Its version (e.g. `2024_03_20.71dd405`), or undefined when the build
   * does not know it: Debian's prints `pasta unknown version`.
   */
  version: string | undefined;
  /**
   * Whether this pasta splices a loopback client of a port it publishes to
   * the namespace's loopback (passt before 2024_10_30): the server inside
   * then sees 127.0.0.1 as its peer, and a service bound only to the
   * container's 127.0.0.1 answers on the published host port
   * (CVE-2021-20199 again; podman issue 24045). podnet then publishes ports
   * through its own forwarder instead ({@link startPasta}).
   */
  splicesLoopback: boolean;
}

function runForOutput(path: string, arg: string): Promise<string> {
  return probeOutput(
    path,
    arg,
    (detail, cause) => new EngineProbeError('pasta', path, detail, { cause }),
  );
}

/**
 * Reads the version from `pasta --version` output: the first line is
 * `pasta VERSION`, or `pasta unknown version` (undefined). Returns null when
 * the text does not start like pasta's.
 */
export function parsePastaVersion(text: string): string | undefined | null {
  const m = /^pasta (\S.*?)\s*$/m.exec(text.trimStart().split('\n', 1)[0] ?? '');
  if (m === null) return null;
  return m[1] === 'unknown version' ? undefined : m[1]!;
}

/** The first passt release whose spliced forwards dial the namespace's own address. */
const UNSPLICED_SINCE = '2024_10_30';

/**
 * Whether a pasta splices loopback clients of its published ports into the
 * namespace's loopback, judged from its `--help` text and version.
 *
 * The release that stopped it (2024_10_30, passt commit "fwd: Direct
 * inbound spliced forwards to the guest's external address") added
 * `--host-lo-to-ns-lo` to ask for the old behaviour back, so a help text
 * listing that option means the new default. Debian's builds print no
 * version, which leaves the help text; a dated version from that release
 * on counts as new too, should a later release drop the deprecated option.
 * Anything else is taken to splice, the side on which podnet's forwarder
 * is used: slower, never unsafe.
 */
export function pastaSplicesLoopback(help: string, version: string | undefined): boolean {
  if (/^\s*--host-lo-to-ns-lo\b/m.test(help)) return false;
  const date = /^(\d{4}_\d{2}_\d{2})\./.exec(version ?? '')?.[1];
  return date === undefined || date < UNSPLICED_SINCE;
}

interface CachedProbe {
  /** What identifies the file's contents cheaply: inode, size, change times. */
  stamp: string;
  binary: PastaBinary;
}

/** Probes by absolute path, each kept until the file changes (two runs of it per probe are slow). */
const probes = new Map<string, CachedProbe>();

async function fileStamp(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/**
 * Locates pasta (on PATH unless `path` is given), reads its version and
 * judges from its help whether it splices loopback clients (see
 * {@link pastaSplicesLoopback}). A binary is probed once until its file
 * changes. Throws EngineMissingError when there is no such executable,
 * EngineProbeError when it does not answer like pasta or lacks an option
 * podnet relies on.
 */
export async function probePasta(path?: string): Promise<PastaBinary> {
  const found = await findExecutable(path ?? 'pasta');
  if (found === undefined) throw new EngineMissingError('pasta', path);
  const stamp = await fileStamp(found);
  const cached = probes.get(found);
  if (cached !== undefined && stamp !== undefined && cached.stamp === stamp) return cached.binary;
  const versionText = await runForOutput(found, '--version');
  const version = parsePastaVersion(versionText);
  if (version === null) {
    throw new EngineProbeError(
      'pasta',
      found,
      `'--version' did not print a pasta version: ${JSON.stringify(versionText.slice(0, 200))}`,
    );
  }
  const help = await runForOutput(found, '--help');
  for (const option of ['--config-net', '--runas', '--netns', '--pid', '--log-file']) {
    if (!help.includes(option))
      throw new EngineProbeError('pasta', found, `'--help' lists no ${option}`);
  }
  // Frozen: the cache hands the same object to every caller.
  const binary: PastaBinary = Object.freeze({
    path: found,
    version,
    splicesLoopback: pastaSplicesLoopback(help, version),
  });
  if (stamp !== undefined) probes.set(found, { stamp, binary });
  return binary;
}
