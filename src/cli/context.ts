// What the network commands build from their flags: the CNI runtime and the
// Networking over the directories they name, and the warnings about files
// skipped while reading them. Loaded by a command's own module, never for
// `--help`.
import { CniRuntime, type CniRuntimeOptions } from '../cni/index.js';
import { Networking, type NetworkingOptions } from '../network/index.js';
import { describeError } from './errors.js';
import { type FlagValues, str, strs } from './flags.js';

/**
 * The CNI runtime the flags ask for, or undefined when they name no CNI
 * directory, so Networking keeps its own defaults.
 */
export function cniFromFlags(values: FlagValues): CniRuntime | undefined {
  const opts: CniRuntimeOptions = {};
  const confDir = str(values, 'cni-config-dir');
  const cacheDir = str(values, 'cni-cache-dir');
  const pluginDirs = strs(values, 'cni-plugin-dir');
  if (confDir !== undefined) opts.confDir = confDir;
  if (cacheDir !== undefined) opts.cacheDir = cacheDir;
  if (pluginDirs.length > 0) opts.pluginDirs = pluginDirs;
  return Object.keys(opts).length === 0 ? undefined : new CniRuntime(opts);
}

/**
 * A Networking over the directories the flags name (defaults for the
 * rest); `up` also gives it `--driver` (in `network create` that flag is
 * the network's driver, not the attaching one).
 */
export function networkingFromFlags(
  values: FlagValues,
  opts: { driver?: boolean } = {},
): Networking {
  // Every command is a process that exits at once: rootless engines must
  // live in a keeper process of their own.
  const options: NetworkingOptions = { keeper: true };
  const cni = cniFromFlags(values);
  const stateDir = str(values, 'state-dir');
  const netnsDir = str(values, 'netns-dir');
  if (cni !== undefined) options.cni = cni;
  if (stateDir !== undefined) options.stateDir = stateDir;
  if (netnsDir !== undefined) options.netnsDir = netnsDir;
  const driver = opts.driver ? str(values, 'driver') : undefined;
  if (driver !== undefined) options.driver = driver as NonNullable<NetworkingOptions['driver']>;
  return new Networking(options);
}

/** A file a command could not read, and the error saying why. */
export interface SkippedFile {
  file: string;
  error: unknown;
}

/**
 * Reports files a listing skipped: with `--strict` the first one is thrown
 * (the command fails), else each is one warning line on stderr, so a broken
 * file is never silently left out of what the command shows.
 */
export function reportSkipped(skipped: readonly SkippedFile[], flags: FlagValues): void {
  if (skipped.length > 0 && flags['strict'] === true) throw skipped[0]?.error;
  for (const { file, error } of skipped) {
    const { line } = describeError(error);
    process.stderr.write(`podnet: warning: skipped ${file}: ${line.slice('podnet: '.length)}\n`);
  }
}
