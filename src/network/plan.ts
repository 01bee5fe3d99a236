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
import type { ContainerState, NetworkMode, RecordedRuntimeConf, SetupOptions } from './types.js';

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
  const requested = options.networks ?? [];
  if (requested.some((n) => typeof n !== 'string' || n === ''))
    throw new InvalidArgumentError('network names must be non-empty strings');
  if (new Set(requested).size !== requested.length)
    throw new InvalidArgumentError(`a network is named twice: ${requested.join(', ')}`);
  if (!joinsCni && (requested.length || ip || mac || (!rootlessEngine && wantedPorts.length))) {
    throw new InvalidArgumentError(
      `networks and static addresses need mode 'bridge' or { pid }; ports also work with 'slirp4netns' and 'pasta'`,
    );
  }
  if (slirp) checkRootlessPorts(wantedPorts, slirp.portHandler);
  // Static addresses go to the first network; with none named, that is the default.
  const names = joinsCni ? (requested.length ? requested : [ctx.defaultNetwork]) : [];
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
    networks: lists.map((list, i) => {
      const network = natives[i];
      return {
        list,
        ifName: `eth${i}`,
        runtime: runtimeConf(state, i, ip, mac),
        ...(network === undefined
          ? {}
          : { native: { network, hostIfName: `veth${randomBytes(4).toString('hex')}` } }),
      };
    }),
  };
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
 * The runtime config of network `index`, podman's rules: ports and static
 * addresses go to the first network only. `netns` is filled in once known
 * (a rootless namespace's path is its helper's).
 */
function runtimeConf(
  state: ContainerState,
  index: number,
  ip: string | undefined,
  mac: string | undefined,
): RecordedRuntimeConf {
  const first = index === 0;
  const capabilityArgs: Record<string, unknown> = {};
  if (first && state.portMappings.length)
    capabilityArgs['portMappings'] = expandPortMappings(state.portMappings);
  if (first && ip !== undefined) capabilityArgs['ips'] = [ip];
  if (first && mac !== undefined) capabilityArgs['mac'] = mac;
  const pod = state.pod ?? state.name;
  const args: [string, string][] = [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', pod],
    ['K8S_POD_NAME', pod],
    ['K8S_POD_INFRA_CONTAINER_ID', state.id],
  ];
  if (first && ip !== undefined) args.push(['IP', ip]);
  if (first && mac !== undefined) args.push(['MAC', mac]);
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
