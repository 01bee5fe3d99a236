// The first half of a setup: a plan. It validates everything a setup is
// asked for (mode and its options, ports, static addresses, networks, whose
// configs are loaded) and decides every name (the namespace path, each
// network's interface and exact runtime config) without touching anything,
// so bad input changes nothing on the host. Execution (networking.ts) then
// only carries the plan out, journalling each step.
import { randomBytes, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  type BridgeDriver,
  type BridgeNetwork,
  bridgeNetworkOf,
  checkNetwork,
  DriverUnsupportedError,
} from '../bridge/index.js';
import type { CniNetworkList, CniRuntime } from '../cni/index.js';
import { InvalidArgumentError, PodnetError } from '../errors.js';
import { checkPortMappings, chooseFreeHostPorts, expandPortMappings } from '../ports.js';
import {
  checkRootlessPorts,
  findExecutable,
  type PastaOptions,
  parsePastaOptions,
  parseSlirp4netnsOptions,
  type Slirp4netnsOptions,
} from '../rootless/index.js';
import { checkContainerId, currentOwner, type StateStore } from './state.js';
import type {
  ContainerState,
  NetworkMode,
  PerNetworkOptions,
  RecordedRuntimeConf,
  SetupOptions,
} from './types.js';

/** No state exists for a container ID. */
export class NoSuchContainerError extends PodnetError {
  constructor(id: string, dir: string) {
    super('ERR_PODNET_NO_SUCH_CONTAINER', `no container '${id}' in '${dir}'`);
  }
}

/** Everything a setup will do, decided and validated before anything is made. */
export interface SetupPlan {
  /** The journal's first entry: phase 'setup', nothing made yet. */
  state: ContainerState;
  /** The rootless engine to run, if any ('none': a rootless namespace without one). */
  engine: 'slirp4netns' | 'pasta' | 'none' | undefined;
  /** slirp4netns's parsed options (mode 'slirp4netns'). */
  slirp: Slirp4netnsOptions | undefined;
  /** pasta's parsed options (mode 'pasta'). */
  pasta: PastaOptions | undefined;
  /** The networks to ADD, in order, with the runtime config each gets. */
  networks: PlannedNetwork[];
}

/** One network of a plan: its list, interface and runtime config, and which driver attaches it. */
export interface PlannedNetwork {
  list: CniNetworkList;
  ifName: string;
  runtime: RecordedRuntimeConf;
  /** Set when the native driver attaches it: what it reads from the list, the host veth's name. */
  native?: { network: BridgeNetwork; hostIfName: string };
}

/**
 * Which driver attaches networks: 'native' (podnet's own bridge driver;
 * a list it cannot serve is refused), 'cni' (the plugins), or 'auto' (the
 * default: native for the embedded default network, the plugins for every
 * config list a user wrote).
 */
export type DriverChoice = 'native' | 'cni' | 'auto';

/** What planning needs from its Networking. */
export interface PlanContext {
  cni: CniRuntime;
  store: StateStore;
  netnsDir: string;
  defaultNetwork: string;
  rootless: boolean;
  driver: DriverChoice;
  bridge: BridgeDriver;
}

const MAC_PATTERN = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Validates a setup request and decides every name; reads configs, changes nothing. */
export async function planSetup(ctx: PlanContext, options: SetupOptions): Promise<SetupPlan> {
  const id = checkContainerId(options.id);
  if (typeof options.name !== 'string' || options.name === '')
    throw new InvalidArgumentError('name must be a non-empty string');
  const mode = checkMode(options.mode ?? (ctx.rootless ? await rootlessDefaultMode() : 'bridge'));
  if (ctx.rootless && mode !== 'pasta' && mode !== 'slirp4netns' && mode !== 'none') {
    throw new PodnetError(
      'ERR_PODNET_NEEDS_ROOT',
      `mode ${JSON.stringify(mode)} needs root; a rootless setup takes 'pasta', 'slirp4netns' or 'none'`,
    );
  }
  const slirp =
    mode === 'slirp4netns' ? parseSlirp4netnsOptions(options.modeOptions ?? []) : undefined;
  const pasta = mode === 'pasta' ? parsePastaOptions(options.modeOptions ?? []) : undefined;
  const rootlessEngine = slirp !== undefined || pasta !== undefined;
  if (!rootlessEngine && options.modeOptions?.length) {
    throw new InvalidArgumentError(
      `mode '${typeof mode === 'string' ? mode : Object.keys(mode)[0]}' takes no options, got ${options.modeOptions.join(',')}`,
    );
  }
  const wantedPorts = checkPortMappings(options.portMappings ?? [], { freeHostPort: true });
  const ip = options.requestedIP ?? options.staticIP;
  const mac = options.requestedMAC ?? options.staticMAC;
  for (const [what, value] of [
    ['staticIP', options.staticIP],
    ['requestedIP', options.requestedIP],
  ] as const) {
    if (value !== undefined && !isIP(value))
      throw new InvalidArgumentError(`${what} '${value}' is not an IP address`);
  }
  for (const [what, value] of [
    ['staticMAC', options.staticMAC],
    ['requestedMAC', options.requestedMAC],
  ] as const) {
    if (value !== undefined && !MAC_PATTERN.test(value))
      throw new InvalidArgumentError(`${what} '${value}' is not a MAC address`);
  }
  const joinsCni = mode === 'bridge' || (typeof mode === 'object' && 'pid' in mode);
  const requested = checkRequestedNetworks(options.networks);
  if (!joinsCni && (requested.length || ip || mac || (!rootlessEngine && wantedPorts.length))) {
    throw new InvalidArgumentError(
      `networks and static addresses need mode 'bridge' or { pid }; ports also work with 'slirp4netns' and 'pasta'`,
    );
  }
  if (slirp) checkRootlessPorts(wantedPorts, slirp.portHandler);
  // Static addresses go to the first network; with none named, that is the default.
  const wanted: [string, PerNetworkOptions][] = joinsCni
    ? requested.length
      ? requested
      : [[ctx.defaultNetwork, {}]]
    : [];
  const names = wanted.map(([n]) => n);
  // The flat options keep podman's first-network rule; given for a network
  // that sets its own too, they are refused rather than one silently lost.
  if (wanted[0] && (ip !== undefined || mac !== undefined)) {
    const [name, own] = wanted[0];
    if ((ip !== undefined && (own.ip ?? own.ip6) !== undefined) || (mac && own.mac))
      throw new InvalidArgumentError(
        `network '${name}' has its own static address: give it there or in the flat options, not both`,
      );
    wanted[0][1] = {
      ...own,
      ...(ip === undefined ? {} : { ip }),
      ...(mac === undefined ? {} : { mac }),
    };
  }
  const ifNames = interfaceNames(wanted.map(([, o]) => o.interfaceName));
  // Load every config before anything is made: a missing network changes nothing.
  const lists = await Promise.all(names.map((n) => ctx.cni.loadNetwork(n)));
  const natives = await Promise.all(lists.map((list) => planNative(ctx, list)));
  // Last, once all is known to be good: a free port is chosen by binding
  // port 0 and closing it again, and recorded, so inspect shows it.
  const portMappings = await chooseFreeHostPorts(wantedPorts);

  const ownsNetns =
    mode === 'bridge' ||
    mode === 'none' ||
    mode === 'slirp4netns' ||
    mode === 'pasta' ||
    (typeof mode === 'object' && 'pid' in mode);
  // A rootless namespace's path is known once its helper runs.
  const netnsPath = ctx.rootless
    ? ''
    : ownsNetns
      ? join(ctx.netnsDir, `cni-${randomUUID()}`)
      : await joinedPath(ctx.store, mode);
  const state: ContainerState = {
    version: 2,
    phase: 'setup',
    owner: currentOwner(),
    id,
    name: options.name,
    ...(options.pod === undefined ? {} : { pod: options.pod }),
    mode,
    netnsPath,
    ownsNetns,
    networksRequested: requested.length > 0,
    networks: [],
    portMappings,
    exposedPorts: [...(options.exposedPorts ?? [])],
    ...(options.staticIP === undefined ? {} : { staticIP: options.staticIP }),
    ...(options.staticMAC === undefined ? {} : { staticMAC: options.staticMAC }),
    ...(options.modeOptions?.length ? { modeOptions: [...options.modeOptions] } : {}),
    helpers: [],
    created: new Date().toISOString(),
  };
  return {
    state,
    engine: slirp ? 'slirp4netns' : pasta ? 'pasta' : ctx.rootless ? 'none' : undefined,
    slirp,
    pasta,
    networks: lists.map((list, i) =>
      plannedNetwork(
        list,
        natives[i],
        ifNames[i]!,
        runtimeConf(state, list.name, i === 0, wanted[i]![1]),
      ),
    ),
  };
}

function plannedNetwork(
  list: CniNetworkList,
  network: BridgeNetwork | undefined,
  ifName: string,
  runtime: RecordedRuntimeConf,
): PlannedNetwork {
  return {
    list,
    ifName,
    runtime,
    ...(network === undefined
      ? {}
      : { native: { network, hostIfName: `veth${randomBytes(4).toString('hex')}` } }),
  };
}

/** A network already attached to the container: a second connect changes nothing. */
export class AlreadyConnectedError extends PodnetError {
  constructor(id: string, network: string) {
    super(
      'ERR_PODNET_ALREADY_CONNECTED',
      `container '${id}' is already connected to network '${network}'`,
    );
  }
}

/** The container is not attached to that network. */
export class NotConnectedError extends PodnetError {
  constructor(id: string, network: string) {
    super('ERR_PODNET_NOT_CONNECTED', `container '${id}' is not connected to network '${network}'`);
  }
}

/**
 * Whether a container's networks can change while it runs: only a bridge
 * or { pid } container's (podnet attaches its networks); a rootless, 'none',
 * { path } or { container } one is refused (ERR_PODNET_CANNOT_CONNECT).
 */
export function checkConnectable(state: ContainerState, action: string): void {
  const mode = state.mode;
  const attached = mode === 'bridge' || (typeof mode === 'object' && 'pid' in mode);
  if (!attached || state.helpers.length > 0) {
    throw new PodnetError(
      'ERR_PODNET_CANNOT_CONNECT',
      `cannot ${action} container '${state.id}': its mode ${JSON.stringify(mode)} has no CNI networks (only 'bridge' and { pid } do)`,
    );
  }
  if (state.phase !== 'ready' || state.adding !== undefined) {
    throw new PodnetError(
      'ERR_PODNET_CANNOT_CONNECT',
      `cannot ${action} container '${state.id}': a setup or connect of it did not complete (run gc)`,
    );
  }
}

/**
 * Plans connecting a ready container (whose lock the caller holds) to one
 * more network: validated like a setup's network, on the lowest free ethN
 * unless `options.interfaceName` names a free one. Reads, changes nothing.
 */
export async function planConnect(
  ctx: PlanContext,
  state: ContainerState,
  name: string,
  options: PerNetworkOptions,
): Promise<PlannedNetwork> {
  checkConnectable(state, 'connect');
  if (typeof name !== 'string' || name === '')
    throw new InvalidArgumentError('a network name must be a non-empty string');
  const opts = checkPerNetwork(name, options);
  if (state.networks.some((n) => n.name === name)) throw new AlreadyConnectedError(state.id, name);
  const taken = new Set(state.networks.map((n) => n.ifName));
  if (opts.interfaceName !== undefined && taken.has(opts.interfaceName))
    throw new InvalidArgumentError(
      `interface '${opts.interfaceName}' of container '${state.id}' is taken`,
    );
  const list = await ctx.cni.loadNetwork(name);
  const native = await planNative(ctx, list);
  const ifName = opts.interfaceName ?? lowestFree(taken);
  return plannedNetwork(list, native, ifName, runtimeConf(state, name, false, opts));
}

function lowestFree(taken: ReadonlySet<string>): string {
  let i = 0;
  while (taken.has(`eth${i}`)) i++;
  return `eth${i}`;
}

// Interface names in order: a network's own, else the lowest ethN nobody took.
function interfaceNames(own: readonly (string | undefined)[]): string[] {
  const taken = new Set<string>();
  for (const n of own) {
    if (n === undefined) continue;
    if (taken.has(n)) throw new InvalidArgumentError(`interface '${n}' is named twice`);
    taken.add(n);
  }
  return own.map((n) => {
    if (n !== undefined) return n;
    const free = lowestFree(taken);
    taken.add(free);
    return free;
  });
}

const IF_NAME = /^eth\d{1,4}$/;
const ALIAS = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,252}$/;

/** `networks` as [name, options] pairs, each checked. */
function checkRequestedNetworks(networks: SetupOptions['networks']): [string, PerNetworkOptions][] {
  if (networks === undefined) return [];
  if (typeof networks !== 'object' || networks === null)
    throw new InvalidArgumentError('networks must be an array of names or a record of options');
  const pairs: [unknown, unknown][] = Array.isArray(networks)
    ? networks.map((n) => [n, {}])
    : Object.entries(networks);
  if (pairs.some(([n]) => typeof n !== 'string' || n === ''))
    throw new InvalidArgumentError('network names must be non-empty strings');
  const names = pairs.map(([n]) => n as string);
  if (new Set(names).size !== names.length)
    throw new InvalidArgumentError(`a network is named twice: ${names.join(', ')}`);
  return pairs.map(([n, o]) => [n as string, checkPerNetwork(n as string, o)]);
}

/** Checks one network's options: addresses, MAC, aliases, interface name. */
function checkPerNetwork(network: string, options: unknown): PerNetworkOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw new InvalidArgumentError(`the options of network '${network}' must be an object`);
  const o = options as Record<string, unknown>;
  const known = ['ip', 'ip6', 'mac', 'aliases', 'interfaceName'];
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length)
    throw new InvalidArgumentError(
      `network '${network}': unknown option ${JSON.stringify(unknown[0])} (${known.join(', ')})`,
    );
  const out: PerNetworkOptions = {};
  if (o['ip'] !== undefined) {
    if (typeof o['ip'] !== 'string' || !isIP(o['ip']))
      throw new InvalidArgumentError(
        `network '${network}': ip ${JSON.stringify(o['ip'])} is not an IP address`,
      );
    out.ip = o['ip'];
  }
  if (o['ip6'] !== undefined) {
    if (typeof o['ip6'] !== 'string' || isIP(o['ip6']) !== 6)
      throw new InvalidArgumentError(
        `network '${network}': ip6 ${JSON.stringify(o['ip6'])} is not an IPv6 address`,
      );
    if (out.ip !== undefined && isIP(out.ip) === 6)
      throw new InvalidArgumentError(`network '${network}': ip and ip6 are both IPv6`);
    out.ip6 = o['ip6'];
  }
  if (o['mac'] !== undefined) {
    if (typeof o['mac'] !== 'string' || !MAC_PATTERN.test(o['mac']))
      throw new InvalidArgumentError(
        `network '${network}': mac ${JSON.stringify(o['mac'])} is not a MAC address`,
      );
    out.mac = o['mac'];
  }
  if (o['aliases'] !== undefined) {
    const a = o['aliases'];
    if (!Array.isArray(a) || a.some((x) => typeof x !== 'string' || !ALIAS.test(x)))
      throw new InvalidArgumentError(
        `network '${network}': aliases must be host names ([A-Za-z0-9][A-Za-z0-9_.-]*)`,
      );
    out.aliases = [...(a as string[])];
  }
  if (o['interfaceName'] !== undefined) {
    if (typeof o['interfaceName'] !== 'string' || !IF_NAME.test(o['interfaceName']))
      throw new InvalidArgumentError(
        `network '${network}': interfaceName ${JSON.stringify(o['interfaceName'])} must be ethN`,
      );
    out.interfaceName = o['interfaceName'];
  }
  return out;
}

/**
 * The native driver's view of a network it is to attach, checked against
 * the host (a bridge name held by another kind of link, a subnet that
 * overlaps a host route: refused before anything is made), or undefined
 * when the plugins attach it.
 */
async function planNative(
  ctx: PlanContext,
  list: CniNetworkList,
): Promise<BridgeNetwork | undefined> {
  if (ctx.driver === 'cni') return undefined;
  if (ctx.driver === 'auto' && list.source !== '<embedded>') return undefined;
  const network = bridgeNetworkOf(list);
  if ('unsupported' in network) {
    if (ctx.driver === 'auto') return undefined;
    throw new DriverUnsupportedError(list.name, network.unsupported);
  }
  const host = await ctx.bridge.host();
  checkNetwork(host, network);
  return network;
}

/**
 * The runtime config of one network, podman's CNI backend's rules: ports go
 * to the first network only; static addresses as both the `ips` capability
 * and CNI_ARGS IP (host-local reads either; IP is one comma list), a MAC as
 * `mac` and CNI_ARGS MAC (tuning), aliases as dnsname's `aliases`
 * capability, keyed by the network's name. `netns` is filled in once known
 * (a rootless namespace's path is its helper's).
 */
export function runtimeConf(
  state: ContainerState,
  network: string,
  first: boolean,
  opts: PerNetworkOptions,
): RecordedRuntimeConf {
  const capabilityArgs: Record<string, unknown> = {};
  if (first && state.portMappings.length)
    capabilityArgs['portMappings'] = expandPortMappings(state.portMappings);
  const ips = [opts.ip, opts.ip6].filter((a): a is string => a !== undefined);
  if (ips.length) capabilityArgs['ips'] = ips;
  if (opts.mac !== undefined) capabilityArgs['mac'] = opts.mac;
  if (opts.aliases?.length) capabilityArgs['aliases'] = { [network]: [...opts.aliases] };
  const pod = state.pod ?? state.name;
  const args: [string, string][] = [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', pod],
    ['K8S_POD_NAME', pod],
    ['K8S_POD_INFRA_CONTAINER_ID', state.id],
  ];
  if (ips.length) args.push(['IP', ips.join(',')]);
  if (opts.mac !== undefined) args.push(['MAC', opts.mac]);
  return { netns: state.netnsPath, args, capabilityArgs };
}

function checkMode(mode: unknown): NetworkMode {
  if (mode === 'bridge' || mode === 'none' || mode === 'slirp4netns' || mode === 'pasta')
    return mode;
  if (typeof mode === 'object' && mode !== null) {
    const keys = Object.keys(mode);
    const m = mode as Record<string, unknown>;
    if (keys.length === 1 && Number.isInteger(m['pid']) && (m['pid'] as number) > 0)
      return { pid: m['pid'] as number };
    if (keys.length === 1 && typeof m['path'] === 'string' && m['path'] !== '')
      return { path: m['path'] };
    if (keys.length === 1 && typeof m['container'] === 'string')
      return { container: checkContainerId(m['container']) };
  }
  throw new InvalidArgumentError(
    `mode must be 'bridge', 'none', 'slirp4netns', 'pasta', { pid }, { path } or { container }, not ${JSON.stringify(mode)}`,
  );
}

/** Follows { container } (and { path }) to the namespace path, refusing cycles. */
async function joinedPath(store: StateStore, mode: NetworkMode): Promise<string> {
  const seen = new Set<string>();
  let m = mode;
  while (typeof m === 'object' && 'container' in m) {
    if (seen.has(m.container)) {
      throw new PodnetError(
        'ERR_PODNET_NAMESPACE_CYCLE',
        `containers share namespaces in a cycle: ${[...seen, m.container].join(' -> ')}`,
      );
    }
    seen.add(m.container);
    const owner = await store.read(m.container);
    if (!owner) throw new NoSuchContainerError(m.container, store.dir);
    if (typeof owner.mode === 'object' && 'container' in owner.mode) m = owner.mode;
    else return owner.netnsPath;
  }
  if (typeof m === 'object' && 'path' in m) return m.path;
  throw new InvalidArgumentError(`mode ${JSON.stringify(mode)} does not join a namespace`);
}

/** podman 5's rootless default: pasta when installed, else slirp4netns. */
async function rootlessDefaultMode(): Promise<NetworkMode> {
  return (await findExecutable('pasta')) ? 'pasta' : 'slirp4netns';
}
