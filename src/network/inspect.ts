// Docker-compatible NetworkSettings from a container's state, in the shape
// podman emits: pure functions of what is on disk, so `podnet inspect` works
// from another process and without root.
import { type CniResult, normalizeResult } from '../cni/index.js';
import { familyOfCidr } from '../cni/result.js';
import { expandPortMappings } from '../ports.js';
import type {
  ContainerState,
  ExposedPort,
  InspectAddress,
  InspectNetwork,
  InspectPortBinding,
  NetworkAddresses,
  NetworkSettings,
  PortMapping,
} from './types.js';

function splitCidr(cidr: string): InspectAddress {
  const slash = cidr.indexOf('/');
  return { Addr: cidr.slice(0, slash), PrefixLen: Number(cidr.slice(slash + 1)) };
}

/**
 * The container's addresses and MACs in one CNI result (any spec version).
 *
 * Only the container side counts: interfaces with a `sandbox` (the bridge and
 * the host end of a veth have none), and the ips that point at one of them or
 * at no interface at all (0.2.0 results and some IPAM-only chains name none).
 * Any non-empty sandbox is accepted rather than the state's netns path,
 * because a plugin may report the namespace by another name (/proc/PID/ns/net
 * for a { pid } container). The family comes from the address, since 1.0
 * results no longer carry `version`. The first address of each family is the
 * primary one, so a dual-stack container's IPv6 is GlobalIPv6Address.
 * Throws ResultFormatError for an address that is not a CIDR.
 */
export function networkAddresses(result: CniResult): NetworkAddresses {
  const { interfaces, ips } = normalizeResult(result);
  const inSandbox = (index: number): boolean => (interfaces[index]?.sandbox ?? '') !== '';
  const ctrIps = ips.filter((ip) => ip.interface === undefined || inSandbox(ip.interface));
  const v4 = ctrIps.filter((ip) => familyOfCidr(ip.address) === 4);
  const v6 = ctrIps.filter((ip) => familyOfCidr(ip.address) === 6);
  const sandboxed = interfaces.flatMap((_, i) => (inSandbox(i) ? [i] : []));
  // The interface carrying the first address is the container's endpoint;
  // index 0 is as valid as any (a plugin that creates only the container
  // interface lists it first).
  const primary = ctrIps[0]?.interface ?? sandboxed[0];

  const [first4, ...more4] = v4;
  const [first6, ...more6] = v6;
  const addr4 = first4 === undefined ? undefined : splitCidr(first4.address);
  const addr6 = first6 === undefined ? undefined : splitCidr(first6.address);
  const otherMacs = sandboxed
    .filter((i) => i !== primary)
    .map((i) => interfaces[i]?.mac ?? '')
    .filter((mac) => mac !== '');

  // Built in the key order of podman's InspectBasicNetworkConfig, so the JSON
  // reads like podman's.
  return {
    Gateway: first4?.gateway ?? '',
    IPAddress: addr4?.Addr ?? '',
    IPPrefixLen: addr4?.PrefixLen ?? 0,
    ...(more4.length > 0 ? { SecondaryIPAddresses: more4.map((ip) => splitCidr(ip.address)) } : {}),
    IPv6Gateway: first6?.gateway ?? '',
    GlobalIPv6Address: addr6?.Addr ?? '',
    GlobalIPv6PrefixLen: addr6?.PrefixLen ?? 0,
    ...(more6.length > 0
      ? { SecondaryIPv6Addresses: more6.map((ip) => splitCidr(ip.address)) }
      : {}),
    MacAddress: primary === undefined ? '' : (interfaces[primary]?.mac ?? ''),
    ...(otherMacs.length > 0 ? { AdditionalMacAddresses: otherMacs } : {}),
  };
}

const noAddresses: NetworkAddresses = {
  Gateway: '',
  IPAddress: '',
  IPPrefixLen: 0,
  IPv6Gateway: '',
  GlobalIPv6Address: '',
  GlobalIPv6PrefixLen: 0,
  MacAddress: '',
};

/**
 * The Ports map: `PORT/PROTO` -> host bindings for published ports (a range
 * expands to one key per port; several mappings to one container port share
 * the key), and null for a port only exposed. Keys are sorted because Go's
 * encoding/json sorts map keys, so the output matches podman's.
 */
export function inspectPorts(
  mappings: readonly PortMapping[],
  exposed: readonly ExposedPort[],
): Record<string, InspectPortBinding[] | null> {
  const ports = new Map<string, InspectPortBinding[] | null>();
  for (const p of expandPortMappings(mappings)) {
    const key = `${p.containerPort}/${p.protocol}`;
    const binding = { HostIp: p.hostIP, HostPort: String(p.hostPort) };
    const bindings = ports.get(key);
    if (bindings) bindings.push(binding);
    else ports.set(key, [binding]);
  }
  for (const e of exposed) {
    const key = `${e.port}/${e.protocol ?? 'tcp'}`;
    if (!ports.has(key)) ports.set(key, null);
  }
  return Object.fromEntries([...ports].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// The aliases dnsname got for a network (its `aliases` capability, keyed by
// the network's name); a state is read back, so only strings count.
function aliasesOf(caps: Record<string, unknown>, network: string): string[] {
  const byNetwork = caps['aliases'];
  if (typeof byNetwork !== 'object' || byNetwork === null) return [];
  const list = (byNetwork as Record<string, unknown>)[network];
  return Array.isArray(list) ? list.filter((a): a is string => typeof a === 'string') : [];
}

/**
 * A container's NetworkSettings as `podman inspect` prints them. The top-level
 * address fields describe the first network (empty with none: 'none' mode, a
 * joined { path }); Networks lists every network by name when networks were
 * requested explicitly, with the network name as NetworkID as podman does for
 * CNI, and a network's aliases (dnsname's) as Aliases. Throws ResultFormatError when a stored result holds a malformed address.
 */
export function buildNetworkSettings(state: ContainerState): NetworkSettings {
  const first = state.networks[0];
  const settings: NetworkSettings = {
    EndpointID: '',
    ...(first === undefined ? noAddresses : networkAddresses(first.result)),
    Bridge: '',
    SandboxID: state.id,
    HairpinMode: false,
    LinkLocalIPv6Address: '',
    LinkLocalIPv6PrefixLen: 0,
    Ports: inspectPorts(state.portMappings, state.exposedPorts),
    SandboxKey: state.netnsPath,
  };
  if (state.networksRequested) {
    const networks: Record<string, InspectNetwork> = {};
    for (const net of state.networks) {
      const aliases = aliasesOf(net.runtime.capabilityArgs, net.name);
      networks[net.name] = {
        EndpointID: '',
        ...networkAddresses(net.result),
        NetworkID: net.name,
        DriverOpts: null,
        IPAMConfig: null,
        Links: null,
        ...(aliases.length ? { Aliases: aliases } : {}),
      };
    }
    settings.Networks = networks;
  }
  return settings;
}
