// Flags of the commands, declared once: registered with cac (routing, `--help`,
// completion) and read back with node:util parseArgs. cac's parser turns every
// numeric-looking value into a number ('--dir 007' becomes 7) and reports
// flags under camelCased names (`--netnsDir`), so values and unknown-flag
// errors come from the raw argv, where they are exact. This module loads
// nothing but node:util: `podnet --help` reads it.
import { parseArgs } from 'node:util';
import type { CAC, Command } from 'cac';
import { UsageError } from './errors.js';

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

/** `--netns-dir`, shared by the network commands and `netns` (which also calls it `--dir`). */
const NETNS_DIR: FlagSpec = {
  name: 'netns-dir',
  arg: 'dir',
  help: 'Network namespace directory (default /run/netns)',
};

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
  NETNS_DIR,
];

/** `--strict`: a configuration or state file that does not load is an error, not a warning. */
export const STRICT_FLAG: FlagSpec = {
  name: 'strict',
  help: 'Fail on a configuration or state file that does not load (default: warn and skip it)',
};

/** Flags of `podnet up`. */
export const UP_FLAGS: readonly FlagSpec[] = [
  { name: 'name', arg: 'name', help: 'Container name (default: the ID)' },
  { name: 'pod', arg: 'pod', help: 'Pod the container belongs to' },
  {
    name: 'network',
    arg: 'net',
    multiple: true,
    help: 'CNI network to attach, repeatable: eth0, eth1, ... (default: the default network)',
  },
  {
    name: 'publish',
    short: 'p',
    arg: 'spec',
    multiple: true,
    help: 'Publish ports, repeatable: [[HOSTIP:][HOSTPORT]:]CTRPORT[/tcp|udp] (no host port: a free one), ranges 8080-8085:80-85, [::1]:8080:80',
  },
  { name: 'ip', arg: 'ip', help: 'Static IP on the first network' },
  { name: 'mac', arg: 'mac', help: "Static MAC of the first network's interface" },
  { name: 'pid', arg: 'pid', help: 'Use the network namespace of this process' },
  { name: 'netns', arg: 'path', help: 'Join this existing namespace as is' },
  {
    name: 'mode',
    arg: 'mode',
    help: 'bridge | none | container:ID | ns:PATH | slirp4netns[:OPT=VAL,...] | pasta[:OPT,...]',
  },
  {
    name: 'driver',
    arg: 'driver',
    help: 'native | cni | auto: who attaches bridge networks (default auto: native for the embedded network, the plugins for config files)',
  },
  {
    name: 'write-etc',
    arg: 'dir',
    help: "Write the container's resolv.conf and hosts into this directory (not a symlink), atomically",
  },
  ...NETWORK_FLAGS,
];

/** Flags of `podnet stats`. */
export const STATS_FLAGS: readonly FlagSpec[] = [
  { name: 'watch', help: 'Redraw every interval until interrupted: counters, then rates' },
  {
    name: 'interval',
    arg: 'seconds',
    help: 'Seconds between redraws with --watch, fractions allowed (default 1)',
  },
  {
    name: 'format',
    arg: 'format',
    help: 'table | json (the same as --json) | openmetrics (cAdvisor names; not with --watch)',
  },
  STRICT_FLAG,
  ...NETWORK_FLAGS,
];

/** Flags of `podnet network` (its actions share one list, as cac registers flags per command). */
export const NETWORKS_FLAGS: readonly FlagSpec[] = [
  {
    name: 'subnet',
    arg: 'cidr',
    multiple: true,
    help: 'create: subnet, repeatable (default: a free /24 from 10.89.0.0/16 upwards)',
  },
  {
    name: 'gateway',
    arg: 'ip',
    multiple: true,
    help: "create: gateway of the --subnet at the same position (default: the subnet's first address)",
  },
  {
    name: 'ip-range',
    arg: 'cidr',
    multiple: true,
    help: 'create: lease range inside the --subnet at the same position',
  },
  { name: 'ipv6', help: 'create: dual stack (a free ULA /64 unless an IPv6 --subnet is given)' },
  { name: 'internal', help: 'create: no default route, no masquerade, no DNS' },
  { name: 'disable-dns', help: 'create: no dnsname plugin (container names not resolved)' },
  {
    name: 'driver',
    short: 'd',
    arg: 'driver',
    help: 'create: bridge (default) | macvlan | ipvlan',
  },
  {
    name: 'opt',
    short: 'o',
    arg: 'k=v',
    multiple: true,
    help: 'create: driver option, repeatable or comma-separated: mtu=N, vlan=N, isolate=true, mode=M, parent=IF, no_default_route=true',
  },
  {
    name: 'route',
    arg: 'dest,gw',
    multiple: true,
    help: 'create: a route for the containers, repeatable: DEST-CIDR,GATEWAY',
  },
  { name: 'label', arg: 'k=v', multiple: true, help: 'create: a label, repeatable' },
  {
    name: 'filter',
    arg: 'k=v',
    multiple: true,
    help: 'ls: name=REGEX, label=K[=V], driver=D, id=PREFIX; repeatable (all must match)',
  },
  { name: 'force', short: 'f', help: 'rm: tear down the containers attached first' },
  { name: 'ip', arg: 'ip', help: 'connect: static IPv4 (or IPv6) address on the network' },
  { name: 'ip6', arg: 'ip', help: 'connect: static IPv6 address on the network' },
  { name: 'mac', arg: 'mac', help: 'connect: static MAC of the new interface' },
  {
    name: 'alias',
    arg: 'name',
    multiple: true,
    help: 'connect: another name dnsname resolves to the container, repeatable',
  },
  { name: 'all', short: 'a', help: 'reload: every ready container' },
  STRICT_FLAG,
  ...NETWORK_FLAGS,
];

/** Flags of `podnet netns`: its directory, by either name. */
export const NETNS_FLAGS: readonly FlagSpec[] = [
  { name: 'dir', arg: 'dir', help: 'Network namespace directory (default /run/netns)' },
  { ...NETNS_DIR, help: 'The same as --dir, as the network commands spell it' },
];

/** Flags of `podnet cluster`. */
export const CLUSTER_FLAGS: readonly FlagSpec[] = [
  { name: 'nodes', arg: 'n', help: 'up: number of nodes, 1 to 32 (default 3)' },
  { name: 'pods', arg: 'n', help: 'up: pods per node, 0 to 64 (default 1)' },
  { name: 'backend', arg: 'name', help: 'up: host-gw (default) or vxlan' },
  { name: 'pod-cidr', arg: 'cidr', help: 'up: the pod CIDR (default a random 10.X.0.0/16)' },
  {
    name: 'plugin',
    arg: 'name',
    help: "up: bridge (default) or flannel (flannel's CNI plugin, where installed)",
  },
  { name: 'all', help: 'down: every cluster' },
  NETNS_DIR,
];

/** `--json`, declared globally on the cac instance and read back like the others. */
export const JSON_FLAG: FlagSpec = { name: 'json', help: 'Print machine-readable JSON' };

/** Registers SPECS on a cac command, so they show in its `--help` and are known to it. */
export function addFlags(command: Command, specs: readonly FlagSpec[]): Command {
  for (const s of specs) {
    const short = s.short === undefined ? '' : `-${s.short}, `;
    const arg = s.arg === undefined ? '' : ` <${s.arg}>`;
    command.option(`${short}--${s.name}${arg}`, s.help);
  }
  return command;
}

/** The option parseArgs names in its error messages, e.g. `--frob` or `-x`. */
function quoted(message: string): string {
  return /'([^']+)'/.exec(message)?.[1] ?? message;
}

/**
 * The values of SPECS (plus `--json`) in the argv cac matched, exactly as
 * typed. An unknown flag or a missing value is a UsageError naming the flag
 * as typed.
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
  const help = cli.matchedCommandName ? `podnet ${cli.matchedCommandName} --help` : 'podnet --help';
  try {
    const { values } = parseArgs({
      args: cli.rawArgs.slice(2, dashes === -1 ? undefined : dashes),
      options,
      allowPositionals: true,
      strict: true,
    });
    // What follows `--` (the command of `exec`), as typed, under '--' as cac keeps it.
    return dashes === -1 ? values : { ...values, '--': cli.rawArgs.slice(dashes + 1) };
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const message = (cause as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new UsageError(`unknown flag '${quoted(message)}' (see ${help})`, { cause });
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      // "Option '--dir <value>' argument missing", or a value given to a boolean flag.
      const flag = quoted(message).split(' ')[0];
      const missing = message.includes('argument missing');
      throw new UsageError(
        missing ? `flag '${flag}' needs a value` : `flag '${flag}' takes no value`,
        { cause },
      );
    }
    throw new UsageError(message, { cause });
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

/** One podnet command. */
export interface CommandSpec {
  name: string;
  /** Its arguments in cac's syntax: `<id>`, `[name]`, `[...ids]`. */
  args: string;
  /** One line, for the command list of `podnet --help`. */
  summary: string;
  /** What it does, in a few sentences, for `podnet NAME --help`. */
  description: string;
  flags: readonly FlagSpec[];
  /** Other names of the command (cac aliases; completion knows them too). */
  aliases?: readonly string[];
  /** Words completion offers as the first argument (sub-actions). */
  actions?: readonly string[];
  /** Command lines shown under Examples, each with a comment. */
  examples: readonly string[];
  /**
   * Runs it with its positional arguments (strings, as typed) and flags
   * (what follows `--` under '--'); resolves to podnet's exit status as a
   * number when that is not simply 0 (exec: the command's own).
   */
  run(args: string[], flags: FlagValues): Promise<unknown>;
  /**
   * podnet's exit status for its own failure, for a command (or action, by
   * ARGS) whose status is otherwise another program's: 125 for exec, as
   * podman exec has, so that it cannot be taken for the command's.
   */
  failureStatus?(args: readonly string[]): number | undefined;
}
