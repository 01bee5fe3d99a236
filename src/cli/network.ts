// `podnet network` (alias `networks`): podman's network noun over the
// library's Networks. Flags are turned into create options here and
// nowhere else; every check of their meaning is the library's (plan.ts).
import { scanNetworks } from '../cni/config.js';
import { normalizeResult } from '../cni/index.js';
import type { ContainerState, PerNetworkOptions } from '../network/types.js';
import type { NetworkCreateOptions, NetworkDriver, NetworkFilters } from '../networks/index.js';
import { Networks } from '../networks/index.js';
import { networkingFromFlags, reportSkipped } from './context.js';
import { SilentExit, UsageError } from './errors.js';
import { type FlagValues, str, strs } from './flags.js';
import { print, printJson, shortId, table } from './output.js';

/** `K=V` pairs of repeatable flags, each value also a comma list (`-o mtu=1400,vlan=5`). */
export function parsePairs(
  flag: string,
  values: readonly string[],
  comma: boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values) {
    for (const item of comma ? value.split(',') : [value]) {
      const eq = item.indexOf('=');
      const key = eq === -1 ? item : item.slice(0, eq);
      if (key === '') throw new UsageError(`--${flag} '${value}': expected KEY=VALUE`);
      out[key] = eq === -1 ? '' : item.slice(eq + 1);
    }
  }
  return out;
}

/** The create options FLAGS ask for (NAME from the command line). */
export function createOptions(name: string | undefined, flags: FlagValues): NetworkCreateOptions {
  const driver = str(flags, 'driver');
  if (driver !== undefined && !['bridge', 'macvlan', 'ipvlan'].includes(driver))
    throw new UsageError(`--driver '${driver}': bridge, macvlan or ipvlan`);
  const options = parsePairs('opt', strs(flags, 'opt'), true);
  for (const [k, v] of Object.entries(options))
    if (v === '') throw new UsageError(`--opt '${k}': expected ${k}=VALUE`);
  const routes = strs(flags, 'route').map((r) => {
    const parts = r.split(',');
    if (parts.length !== 2 || parts.some((p) => p === ''))
      throw new UsageError(`--route '${r}': expected DEST-CIDR,GATEWAY`);
    return { destination: parts[0]!, gateway: parts[1]! };
  });
  const subnets = strs(flags, 'subnet');
  const gateway = strs(flags, 'gateway');
  const ipRange = strs(flags, 'ip-range');
  const labels = parsePairs('label', strs(flags, 'label'), false);
  return {
    ...(name === undefined ? {} : { name }),
    ...(driver === undefined ? {} : { driver: driver as NetworkDriver }),
    ...(subnets.length > 0 ? { subnets } : {}),
    ...(gateway.length > 0 ? { gateway } : {}),
    ...(ipRange.length > 0 ? { ipRange } : {}),
    ...(flags['ipv6'] === true ? { ipv6: true } : {}),
    ...(flags['internal'] === true ? { internal: true } : {}),
    ...(flags['disable-dns'] === true ? { dns: false } : {}),
    ...(Object.keys(options).length > 0 ? { options } : {}),
    ...(routes.length > 0 ? { routes } : {}),
    ...(Object.keys(labels).length > 0 ? { labels } : {}),
  };
}

/** `ls --filter K=V...` as library filters (podman's keys: name, label, driver, id). */
export function listFilters(flags: FlagValues): NetworkFilters {
  const filters: Required<NetworkFilters> = { name: [], label: [], driver: [], id: [] };
  for (const f of strs(flags, 'filter')) {
    const eq = f.indexOf('=');
    const key = f.slice(0, eq);
    if (eq === -1 || !(key in filters))
      throw new UsageError(`--filter '${f}': expected name=, label=, driver= or id=`);
    filters[key as keyof NetworkFilters].push(f.slice(eq + 1));
  }
  return filters;
}

const ACTIONS = 'create, ls, inspect, rm, prune, exists, connect, disconnect or reload';

/** The connect options FLAGS ask for (--ip, --ip6, --mac, --alias). */
export function connectOptions(flags: FlagValues): PerNetworkOptions {
  const ip = str(flags, 'ip');
  const ip6 = str(flags, 'ip6');
  const mac = str(flags, 'mac');
  const aliases = strs(flags, 'alias');
  return {
    ...(ip === undefined ? {} : { ip }),
    ...(ip6 === undefined ? {} : { ip6 }),
    ...(mac === undefined ? {} : { mac }),
    ...(aliases.length > 0 ? { aliases } : {}),
  };
}

// `reload --all` takes the containers whose networks podnet attached.
function connectable(s: ContainerState): boolean {
  return (
    (s.mode === 'bridge' || (typeof s.mode === 'object' && 'pid' in s.mode)) &&
    s.helpers.length === 0
  );
}

/**
 * `podnet network [create|ls|inspect|rm|prune|exists] [NAME...]`,
 * `network connect|disconnect NET ID`, `network reload ID...|--all`.
 */
export async function network(
  [action = 'ls', ...names]: string[],
  flags: FlagValues,
): Promise<void> {
  const networking = networkingFromFlags(flags);
  const networks = new Networks({ networking });
  const json = flags['json'] === true;
  const one = (): string => {
    if (names.length !== 1) throw new UsageError(`network ${action} takes one NAME`);
    return names[0]!;
  };
  switch (action) {
    case 'create': {
      if (names.length > 1) throw new UsageError('network create takes at most one NAME');
      const net = await networks.create(createOptions(names[0], flags));
      return print(json, net, () => net.name);
    }
    case 'ls': {
      if (names.length > 0)
        throw new UsageError('network ls takes no NAME (use --filter name=...)');
      const filters = listFilters(flags);
      // The library skips files that do not load; the scan names them.
      reportSkipped((await scanNetworks(networks.configDir)).invalid, flags);
      const list = await networks.list(filters);
      return print(json, list, () =>
        table(
          ['NETWORK ID', 'NAME', 'DRIVER'],
          list.map((n) => [shortId(n.id), n.name, n.driver]),
        ),
      );
    }
    case 'inspect': {
      if (names.length === 0) throw new UsageError('network inspect needs a NAME');
      // podman prints an array, whatever the count.
      const found = [];
      for (const name of names) found.push(await networks.inspect(name));
      return printJson(found);
    }
    case 'rm': {
      if (names.length === 0) throw new UsageError('network rm needs a NAME');
      for (const name of names) await networks.remove(name, { force: flags['force'] === true });
      return print(json, names, () => names.join('\n'));
    }
    case 'prune': {
      if (names.length > 0) throw new UsageError('network prune takes no NAME');
      const removed = await networks.prune();
      return print(json, removed, () => removed.join('\n'));
    }
    case 'exists': {
      if (!(await networks.exists(one()))) throw new SilentExit(1);
      return;
    }
    case 'connect':
    case 'disconnect': {
      if (names.length !== 2) throw new UsageError(`network ${action} takes NETWORK and ID`);
      const [net, id] = names as [string, string];
      if (action === 'disconnect') {
        await networking.disconnect(id, net);
        return print(json, { id, network: net }, () => `${id}: disconnected from ${net}`);
      }
      const attached = await networking.connect(id, net, connectOptions(flags));
      const ips = normalizeResult(attached.result).ips.map((ip) => ip.address);
      return print(
        json,
        { id, network: net, ifName: attached.ifName, addresses: ips },
        () => `${id}: ${attached.ifName} on ${net}: ${ips.join(', ') || 'no address'}`,
      );
    }
    case 'reload': {
      const all = flags['all'] === true;
      if (all === names.length > 0) throw new UsageError('network reload takes IDs or --all');
      const ids = all
        ? (await networking.list())
            .filter((s) => s.phase === 'ready' && connectable(s))
            .map((s) => s.id)
        : names;
      const done: { id: string; networks: string[] }[] = [];
      for (const id of ids)
        done.push({ id, networks: (await networking.reload(id)).map((n) => n.name) });
      return print(json, done, () =>
        done.map((d) => `${d.id}: reloaded ${d.networks.join(', ')}`).join('\n'),
      );
    }
    default:
      throw new UsageError(`unknown network action '${action}': ${ACTIONS}`);
  }
}
