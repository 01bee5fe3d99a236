// Flags of the network commands, declared once: registered with cac (routing,
// `--help`, unknown-option errors) and read back with node:util parseArgs.
// cac's parser turns every numeric-looking value into a number ('--name 007'
// becomes 7), so values are taken from the raw argv, where they are exact.
import { parseArgs } from 'node:util';
import type { CAC, Command } from 'cac';
import { CniRuntime, type CniRuntimeOptions } from '../cni/index.js';
import { InvalidArgumentError } from '../errors.js';
import { Networking, type NetworkingOptions } from '../network/index.js';

/** One flag: `--NAME [<ARG>]`, optionally `-SHORT`, optionally repeatable. */
export interface FlagSpec {
  name: string;
  /** Placeholder of its value in help; absent for a boolean flag. */
  arg?: string;
  short?: string;
  /** May be given several times; read back as an array in the given order. */
  multiple?: boolean;
  help: string;
}

/** Flag values as typed: strings, arrays of strings for repeatable flags, booleans. */
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** The flags every network command takes, which keep tests off the host's own state. */
export const NETWORK_FLAGS: readonly FlagSpec[] = [
  {
    name: 'state-dir',
    arg: 'dir',
    help: 'Container state directory (default /run/podnet; env PODNET_STATE_DIR)',
  },
  {
    name: 'cni-config-dir',
    arg: 'dir',
    help: 'CNI network configuration directory (default /etc/cni/net.d)',
  },
  {
    name: 'cni-cache-dir',
    arg: 'dir',
    help: 'CNI result cache directory (default /var/lib/cni)',
  },
  {
    name: 'cni-plugin-dir',
    arg: 'dir',
    multiple: true,
    help: 'CNI plugin directory, repeatable (default /usr/lib/cni, /opt/cni/bin)',
  },
  { name: 'netns-dir', arg: 'dir', help: 'Network namespace directory (default /run/netns)' },
];

/** `--json`, declared globally on the cac instance and read back like the others. */
const JSON_FLAG: FlagSpec = { name: 'json', help: 'Print machine-readable JSON' };

/** Registers SPECS on a cac command, so they show in its `--help` and are known to it. */
export function addFlags(command: Command, specs: readonly FlagSpec[]): Command {
  for (const s of specs) {
    const short = s.short === undefined ? '' : `-${s.short}, `;
    const arg = s.arg === undefined ? '' : ` <${s.arg}>`;
    command.option(`${short}--${s.name}${arg}`, s.help);
  }
  return command;
}

/**
 * The values of SPECS (plus `--json`) in the argv cac matched, exactly as
 * typed. An unknown flag or a missing value is an InvalidArgumentError.
 */
export function readFlags(cli: CAC, specs: readonly FlagSpec[]): FlagValues {
  const options: NonNullable<Parameters<typeof parseArgs>[0]>['options'] = {};
  for (const s of [...specs, JSON_FLAG]) {
    options[s.name] = {
      type: s.arg === undefined ? 'boolean' : 'string',
      ...(s.short === undefined ? {} : { short: s.short }),
      ...(s.multiple ? { multiple: true } : {}),
    };
  }
  const dashes = cli.rawArgs.indexOf('--');
  try {
    return parseArgs({
      args: cli.rawArgs.slice(2, dashes === -1 ? undefined : dashes),
      options,
      allowPositionals: true,
      strict: true,
    }).values;
  } catch (cause) {
    throw new InvalidArgumentError((cause as Error).message, { cause });
  }
}

/** A string flag's value (undefined when absent). */
export function str(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A repeatable flag's values (empty when absent). */
export function strs(values: FlagValues, name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.filter((x) => typeof x === 'string') : [];
}

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

/** A Networking over the directories the flags name (defaults for the rest). */
export function networkingFromFlags(values: FlagValues): Networking {
  // Every command is a process that exits at once: rootless engines must
  // live in a keeper process of their own.
  const opts: NetworkingOptions = { keeper: true };
  const cni = cniFromFlags(values);
  const stateDir = str(values, 'state-dir');
  const netnsDir = str(values, 'netns-dir');
  if (cni !== undefined) opts.cni = cni;
  if (stateDir !== undefined) opts.stateDir = stateDir;
  if (netnsDir !== undefined) opts.netnsDir = netnsDir;
  return new Networking(opts);
}
