// `podnet up`, `down`, `inspect` and `gc`: a container's network across
// processes. Each command is one process: `up` leaves the namespace mounted
// and the state on disk, so later commands find them by ID.
import type { CAC } from 'cac';
import type { Attachment, GcReport } from '../network/index.js';
import type { NetworkSettings } from '../network/types.js';
import { parseUpArgs } from './args.js';
import {
  addFlags,
  type FlagSpec,
  NETWORK_FLAGS,
  networkingFromFlags,
  readFlags,
  str,
  strs,
} from './flags.js';
import { print, printJson } from './output.js';

const UP_FLAGS: readonly FlagSpec[] = [
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
  ...NETWORK_FLAGS,
];

/** One network of `podnet up`'s summary. */
interface NetworkLine {
  name: string;
  ifName: string;
  addresses: string[];
  gateway: string;
  mac: string;
}

/**
 * The networks of an attachment with their addresses. Inspect lists networks
 * by name only when they were requested explicitly; otherwise there is one
 * (the default) and its addresses are the top-level fields.
 */
function networkLines(att: Attachment, settings: NetworkSettings): NetworkLine[] {
  return att.state.networks.map((n, i) => {
    const s = settings.Networks?.[n.name] ?? (i === 0 ? settings : undefined);
    const addresses = [
      s?.IPAddress ? `${s.IPAddress}/${s.IPPrefixLen}` : '',
      s?.GlobalIPv6Address ? `${s.GlobalIPv6Address}/${s.GlobalIPv6PrefixLen}` : '',
    ].filter((a) => a !== '');
    return {
      name: n.name,
      ifName: n.ifName,
      addresses,
      gateway: [s?.Gateway, s?.IPv6Gateway].filter(Boolean).join(', '),
      mac: s?.MacAddress ?? '',
    };
  });
}

/** The few lines `podnet up` prints: where the namespace is, its addresses and ports. */
function formatUp(att: Attachment, settings: NetworkSettings): string {
  const lines = [`${att.id}: namespace ${att.state.netnsPath}`];
  for (const n of networkLines(att, settings)) {
    const parts = [`  ${n.ifName} on ${n.name}: ${n.addresses.join(', ') || 'no address'}`];
    if (n.gateway) parts.push(`gateway ${n.gateway}`);
    if (n.mac) parts.push(`mac ${n.mac}`);
    lines.push(parts.join('  '));
  }
  const ports = Object.entries(settings.Ports).flatMap(([ctr, bindings]) =>
    (bindings ?? []).map((b) => {
      const host = b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp || '*';
      return `${host}:${b.HostPort}->${ctr}`;
    }),
  );
  if (ports.length > 0) lines.push(`  ports: ${ports.join(', ')}`);
  return lines.join('\n');
}

function formatGc(r: GcReport): string {
  const sections: [string, string[]][] = [
    ['removed state of', r.removedStates],
    ['unmounted', r.removedMounts],
    ['released', r.releasedAttachments.map((a) => `${a.containerId}/${a.ifName} on ${a.network}`)],
    ['stopped processes', r.killedPids.map(String)],
    ['could not clean', r.errors],
  ];
  const lines = sections.filter(([, items]) => items.length > 0);
  if (lines.length === 0) return 'nothing to clean';
  return lines.map(([what, items]) => `${what}: ${items.join(', ')}`).join('\n');
}

/** Registers `up`, `down`, `inspect` and `gc` on CLI. */
export function registerContainerCommands(cli: CAC): void {
  addFlags(
    cli.command('up <id>', "Set up a container's network: a namespace attached to CNI networks"),
    UP_FLAGS,
  ).action(async (id: string) => {
    const flags = readFlags(cli, UP_FLAGS);
    const options = parseUpArgs(id, {
      name: str(flags, 'name'),
      pod: str(flags, 'pod'),
      network: strs(flags, 'network'),
      publish: strs(flags, 'publish'),
      ip: str(flags, 'ip'),
      mac: str(flags, 'mac'),
      pid: str(flags, 'pid'),
      netns: str(flags, 'netns'),
      mode: str(flags, 'mode'),
    });
    const att = await networkingFromFlags(flags).setup(options);
    try {
      const settings = att.inspect();
      print(flags['json'] === true, settings, () => formatUp(att, settings));
    } finally {
      // The namespace stays mounted and the state on disk for `down`.
      att.close();
    }
  });

  addFlags(
    cli.command('down <id>', "Tear down a container's network (CNI DEL, namespace removed)"),
    NETWORK_FLAGS,
  ).action(async (id: string) => {
    const flags = readFlags(cli, NETWORK_FLAGS);
    const att = await networkingFromFlags(flags).load(id);
    const { netnsPath, networks } = att.state;
    await att.teardown();
    print(
      flags['json'] === true,
      { id, netns: netnsPath, networks: networks.map((n) => n.name) },
      () => `${id}: down`,
    );
  });

  addFlags(
    cli.command('inspect <id>', "A container's Docker-compatible NetworkSettings (JSON)"),
    NETWORK_FLAGS,
  ).action(async (id: string) => {
    const flags = readFlags(cli, NETWORK_FLAGS);
    const att = await networkingFromFlags(flags).load(id);
    try {
      printJson(att.inspect());
    } finally {
      att.close();
    }
  });

  addFlags(
    cli.command('gc', 'Remove what dead containers left: state, mounts, CNI attachments, helpers'),
    NETWORK_FLAGS,
  ).action(async () => {
    const flags = readFlags(cli, NETWORK_FLAGS);
    const report = await networkingFromFlags(flags).gc();
    print(flags['json'] === true, report, () => formatGc(report));
  });
}
