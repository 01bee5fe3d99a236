// `podnet up`, `down`, `inspect` and `gc`: a container's network across
// processes. Each command is one process: `up` leaves the namespace mounted
// and the state on disk, so later commands find them by ID.
import { validTrace } from '../diagnostics.js';
import { checkEtcDir, writeEtcFiles } from '../network/etc.js';
import type { Attachment, GcReport } from '../network/index.js';
import type { NetworkSettings } from '../network/types.js';
import { sweepTopologies, type TopologySweepReport } from '../testing/index.js';
import { parseUpArgs } from './args.js';
import { networkingFromFlags } from './context.js';
import { type FlagValues, str, strs } from './flags.js';
import { print, printJson } from './output.js';

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

function formatGc(r: GcReport, t: TopologySweepReport): string {
  const sections: [string, string[]][] = [
    ['removed state of', r.removedStates],
    ['unmounted', r.removedMounts],
    ['released', r.releasedAttachments.map((a) => `${a.containerId}/${a.ifName} on ${a.network}`)],
    ['stopped processes', r.killedPids.map(String)],
    ['removed test topologies', t.removedTopologies],
    ['could not clean', [...r.errors, ...t.errors]],
  ];
  const lines = sections.filter(([, items]) => items.length > 0);
  if (lines.length === 0) return 'nothing to clean';
  return lines.map(([what, items]) => `${what}: ${items.join(', ')}`).join('\n');
}

/** `podnet up ID`: sets up the network, prints a summary, leaves it for `down`. */
export async function up([id = '']: string[], flags: FlagValues): Promise<void> {
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
  // A caller's trace in the environment (CI systems set TRACEPARENT, as
  // OpenTelemetry's environment carriers do) continues into the plugins;
  // one that is not valid is no trace, as libcni treats it.
  const trace = validTrace({
    traceparent: process.env['TRACEPARENT'],
    tracestate: process.env['TRACESTATE'],
  });
  if (trace?.traceparent !== undefined) {
    options.traceparent = trace.traceparent;
    if (trace.tracestate !== undefined) options.tracestate = trace.tracestate;
  }
  // Checked before the setup: a DIR that cannot take the files changes nothing.
  const etcDir = str(flags, 'write-etc');
  if (etcDir !== undefined) checkEtcDir(etcDir);
  const att = await networkingFromFlags(flags, { driver: true }).setup(options);
  if (etcDir !== undefined) {
    try {
      writeEtcFiles(etcDir, { resolvConf: await att.resolvConf(), hosts: att.hosts() });
    } catch (err) {
      // Files the engine cannot mount make the container unusable: undo it.
      await att.teardown();
      throw err;
    }
  }
  try {
    const settings = att.inspect();
    print(flags['json'] === true, settings, () => formatUp(att, settings));
  } finally {
    // The namespace stays mounted and the state on disk for `down`.
    att.close();
  }
}

/** `podnet down ID`: tears the container's network down. */
export async function down([id = '']: string[], flags: FlagValues): Promise<void> {
  const att = await networkingFromFlags(flags).load(id);
  const { netnsPath, networks } = att.state;
  await att.teardown();
  print(
    flags['json'] === true,
    { id, netns: netnsPath, networks: networks.map((n) => n.name) },
    () => `${id}: down`,
  );
}

/** `podnet inspect ID`: the NetworkSettings as JSON. */
export async function inspect([id = '']: string[], flags: FlagValues): Promise<void> {
  const att = await networkingFromFlags(flags).load(id);
  try {
    printJson(att.inspect());
  } finally {
    att.close();
  }
}

/**
 * `podnet gc`: removes what dead containers left, and the test topologies
 * (podnet/testing) of runners that died, from their records (the CLI may
 * import testing; network may not, so the sweep is here, not in Networking.gc).
 */
export async function gc(_args: string[], flags: FlagValues): Promise<void> {
  const report = await networkingFromFlags(flags).gc();
  const testTopologies: TopologySweepReport = await sweepTopologies().catch((err: unknown) => ({
    removedTopologies: [],
    removedNamespaces: [],
    errors: [`test topologies: ${err instanceof Error ? err.message : String(err)}`],
  }));
  const all = { ...report, testTopologies };
  print(flags['json'] === true, all, () => formatGc(report, testTopologies));
}
