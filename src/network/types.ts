// The orchestration layer's data: what a caller asks for (SetupOptions),
// what is kept on disk per container (ContainerState), and what inspect and
// stats return. Kept apart from the code so every part shares one contract.
import type { CniResult } from '../cni/index.js';
import type { TraceContext } from '../diagnostics.js';
import type { LinkStats } from '../netns/index.js';
import type { PortMapping } from '../ports.js';
import type { ForwardedPortStats } from '../rootless/forwarder/job.js';

export type { PortMapping } from '../ports.js';

/** A port the container exposes without publishing it (inspect shows it as null). */
export interface ExposedPort {
  port: number;
  protocol?: 'tcp' | 'udp';
}

/**
 * How a container gets its network namespace:
 * - 'bridge': a new namespace attached to CNI networks (the default as root);
 * - 'none': a new namespace with only `lo` up;
 * - { pid }: the namespace of a running process, bind-mounted, then CNI;
 * - { path }: an existing namespace, joined as is (never configured or removed);
 * - { container }: the namespace of another container (followed to its owner);
 * - 'slirp4netns': a new namespace with slirp4netns on tap0 (ports through
 *   its API or podnet's forwarder), owned by the process that set it up;
 * - 'pasta': a new namespace with pasta (the host's addresses copied in;
 *   pasta publishes the ports), owned by the process that set it up.
 */
export type NetworkMode =
  | 'bridge'
  | 'none'
  | 'slirp4netns'
  | 'pasta'
  | { pid: number }
  | { path: string }
  | { container: string };

/** What `Networking.setup` is asked for. */
export interface SetupOptions {
  /** Container ID (the CNI container ID); [A-Za-z0-9][A-Za-z0-9_.-]*. */
  id: string;
  /** Container name (the CNI pod name unless in a pod). */
  name: string;
  /** Pod name, when the container is in one (then the CNI pod name). */
  pod?: string;
  /**
   * CNI networks to attach, in order (eth0, eth1, ...); default the default
   * network. As a record, each network with its own static settings
   * (podman's PerNetworkOptions), attached in the record's key order.
   */
  networks?: string[] | Record<string, PerNetworkOptions>;
  /** Published ports (go to the first network's runtime config). */
  portMappings?: PortMapping[];
  /** Exposed, unpublished ports (inspect only). */
  exposedPorts?: ExposedPort[];
  /** Static IPv4/IPv6 address on the first network. */
  staticIP?: string;
  /** Static MAC of the first network's interface. */
  staticMAC?: string;
  /** One-shot IP override for this setup only (podman's requestedIP, used on restore). */
  requestedIP?: string;
  /** One-shot MAC override for this setup only (podman's requestedMAC). */
  requestedMAC?: string;
  /** Namespace mode (default 'bridge'). */
  mode?: NetworkMode;
  /** Mode options as podman spells them (allow_host_loopback=true, ...). */
  modeOptions?: string[];
  /** Aborts a setup in progress (what was done is rolled back). */
  signal?: AbortSignal;
  /**
   * W3C trace context of the caller's span: the setup runs in this trace,
   * and each plugin gets it as TRACEPARENT (a `podnet:network:setup` start
   * subscriber may replace it). Invalid: ERR_PODNET_INVALID_ARGUMENT.
   */
  traceparent?: string;
  /** W3C tracestate going with `traceparent` (at most 512 printable ASCII characters). */
  tracestate?: string;
}

/**
 * One network's own settings in a setup or in `Networking.connect`: podman's
 * PerNetworkOptions (static_ips, static_mac, aliases, interface_name),
 * spelt as podnet's options are. Static addresses go to host-local (the
 * `ips` capability and CNI_ARGS IP) or the native driver's IPAM; the MAC to
 * tuning (`mac`, CNI_ARGS MAC); aliases to dnsname (`aliases`: { NET: [...] }).
 */
export interface PerNetworkOptions {
  /** Static IPv4 (or IPv6) address on this network. */
  ip?: string;
  /** Static IPv6 address on this network (beside `ip`, for a dual-stack one). */
  ip6?: string;
  /** Static MAC of this network's interface. */
  mac?: string;
  /** More names dnsname resolves to this container on this network. */
  aliases?: string[];
  /** The interface inside the namespace: ethN (default the lowest free one). */
  interfaceName?: string;
}

/**
 * The context object of a setup on the `podnet:network:setup` tracing
 * channel (Node adds `result` or `error` at its end).
 */
export interface SetupTraceContext extends TraceContext {
  /** Container ID. */
  id: string;
  /** Container name. */
  name: string;
}

/** The context object of a teardown on the `podnet:network:teardown` tracing channel. */
export interface TeardownTraceContext extends TraceContext {
  /** Container ID. */
  id: string;
}

/**
 * The runtime config an ADD was run with (libcni's RuntimeConf less the
 * container ID and interface name, kept beside it): DEL gets exactly this.
 */
export interface RecordedRuntimeConf {
  /** CNI_NETNS. */
  netns: string;
  /** CNI_ARGS pairs. */
  args: [string, string][];
  /** Capability arguments (portMappings, ips, mac). */
  capabilityArgs: Record<string, unknown>;
}

/** One CNI network a container is attached to, as kept in its state. */
export interface AttachedNetwork {
  /** Network (list) name. */
  name: string;
  /** Interface name inside the namespace (eth0, eth1, ...). */
  ifName: string;
  /** The network list's JSON as used at ADD time (DEL uses the same). */
  config: string;
  /** The runtime config ADD got. */
  runtime: RecordedRuntimeConf;
  /** The ADD result in the list's cniVersion. */
  result: CniResult;
  /** 'native': podnet's own bridge driver attached it, not the plugins. */
  driver?: 'native';
  /** The native driver's host end of the veth (veth + 8 hex digits). */
  hostIfName?: string;
}

/**
 * The journal entry of a network ADD in progress, written (and fsynced)
 * before each of its plugins runs: after a crash, DEL asks the plugins up
 * to `reached` with the last result known, whether or not the CNI cache
 * (written only once the whole chain has run) has an entry.
 */
export interface PendingNetwork {
  name: string;
  ifName: string;
  config: string;
  runtime: RecordedRuntimeConf;
  /** Index of the last plugin started (-1: none yet). */
  reached: number;
  /** What that plugin got as prevResult, in the list's cniVersion. */
  prevResult?: CniResult;
  /**
   * That plugin's process, which leads a process group: if the setup's
   * process dies, the plugin (and what it started) is killed before DEL, so
   * an ADD still running cannot finish after its undo.
   */
  plugin?: { pid: number; startTime: string };
  /** 'native': the native driver is attaching it (its undo needs no `reached`). */
  driver?: 'native';
  /** The native driver's host end of the veth, named before it is made. */
  hostIfName?: string;
}

/** A helper process a container's network needs (slirp4netns, a port forwarder). */
export interface HelperProcess {
  /**
   * keeper: the process that owns the others for a container set up by a
   * process that exited; userns: the UserNamespace helper holding a rootless
   * container's namespaces (its netnsPath is then /proc/PID/ns/net).
   */
  kind: 'keeper' | 'slirp4netns' | 'pasta' | 'forwarder' | 'userns';
  pid: number;
  /** The process's start time (/proc/PID/stat field 22): never signal a reused pid. */
  startTime: string;
  /** An engine's private directory (log, pid file, API socket): removed once it has stopped. */
  dir?: string;
}

/** The process doing a setup, so gc can tell a live setup from a crashed one. */
export interface SetupOwner {
  pid: number;
  /** The process's start time (/proc/PID/stat field 22), against pid reuse. */
  startTime: string;
}

/**
 * Everything kept on disk about one container (stateDir/ID.json). While a
 * setup runs the file is its journal: each step is recorded before it is
 * taken (the namespace path before the namespace is made, each network in
 * `adding` before each of its plugins runs, a helper as soon as it has a
 * pid), so teardown and gc undo exactly what may exist.
 */
export interface ContainerState {
  /** Format version of this file. */
  version: 2;
  /**
   * 'setup' while a setup runs (written before anything is made, so a crash
   * at any point leaves state gc can finish), 'ready' once it completed.
   */
  phase: 'setup' | 'ready';
  /** Who is running the setup (phase 'setup' only). */
  owner?: SetupOwner;
  id: string;
  name: string;
  pod?: string;
  /** The mode as requested (a container mode is stored resolved to its path). */
  mode: NetworkMode;
  /** Namespace path ('' while none exists yet). */
  netnsPath: string;
  /** Whether podnet created the namespace (and so removes it on teardown). */
  ownsNetns: boolean;
  /** Whether networks were requested explicitly (inspect then lists Networks). */
  networksRequested: boolean;
  /** Networks whose ADD completed, in order. */
  networks: AttachedNetwork[];
  /** The network ADD in progress (phase 'setup' only). */
  adding?: PendingNetwork;
  portMappings: PortMapping[];
  exposedPorts: ExposedPort[];
  staticIP?: string;
  staticMAC?: string;
  /** Options of a rootless mode, as podman spells them. */
  modeOptions?: string[];
  /** Helper processes (slirp4netns, forwarders) to stop on teardown. */
  helpers: HelperProcess[];
  /** ISO time of setup. */
  created: string;
}

/** One address entry of Docker's inspect output. */
export interface InspectAddress {
  Addr: string;
  PrefixLen: number;
}

/** Host side of a published port in inspect output. */
export interface InspectPortBinding {
  HostIp: string;
  HostPort: string;
}

/**
 * The address fields one CNI result gives: at the top level of
 * NetworkSettings (for the first network) and in each Networks entry. The
 * optional lists are absent, not empty, when there is nothing in them, as
 * podman omits them.
 */
export interface NetworkAddresses {
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  SecondaryIPAddresses?: InspectAddress[];
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  SecondaryIPv6Addresses?: InspectAddress[];
  MacAddress: string;
  AdditionalMacAddresses?: string[];
}

/** Per-network entry of inspect output (Docker's EndpointSettings subset podman emits). */
export interface InspectNetwork extends NetworkAddresses {
  EndpointID: string;
  NetworkID: string;
  DriverOpts: null;
  IPAMConfig: null;
  Links: null;
  Aliases?: string[];
}

/** Docker-compatible NetworkSettings, field names as podman emits them. */
export interface NetworkSettings extends NetworkAddresses {
  EndpointID: string;
  Bridge: string;
  SandboxID: string;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  Ports: Record<string, InspectPortBinding[] | null>;
  SandboxKey: string;
  Networks?: Record<string, InspectNetwork>;
}

/** Counters of one interface. */
export interface InterfaceStats {
  name: string;
  /** Set (true) on the loopback interface, listed only when asked for (StatsOptions.loopback). */
  loopback?: true;
  stats: LinkStats;
}

/**
 * Which counter carries the traffic of a container's published ports:
 * - an interface name: the container's interface the traffic arrives on
 *   (a bridge network's eth0, whose counters include DNATed traffic;
 *   slirp4netns's tap0 with port_handler=slirp4netns);
 * - 'lo': the container's loopback, where pasta's splice delivers loopback
 *   clients (its own tap interface carries the other clients);
 * - 'forwarder': podnet's port forwarder, whose per-port counters are
 *   {@link ContainerStats.ports} (it dials the container's own address from
 *   inside, so the same bytes cross lo as well).
 */
export type PublishedVia = string;

/**
 * Counters of one port published by podnet's forwarder, in the container's
 * view: rx is what clients sent to the container, tx what went back (the
 * forwarder's own per-port counters, as ContainerStats carries them).
 */
export interface PublishedPortStats extends ForwardedPortStats {}

/**
 * Statistics of a container: every non-loopback interface (and lo, flagged,
 * when asked for), their sum (without lo unless asked), and for a container
 * with published ports which counter carries them.
 */
export interface ContainerStats {
  interfaces: InterfaceStats[];
  total: LinkStats;
  /** Where the published ports' traffic is counted (absent: no published ports). */
  publishedVia?: PublishedVia;
  /** Per-port counters of podnet's forwarder (publishedVia 'forwarder'). */
  ports?: PublishedPortStats[];
}

/** Options of Attachment.stats. */
export interface StatsOptions {
  /**
   * List lo as well, flagged `loopback: true`: always (true), never (false,
   * the default), or 'published' when it carries published-port traffic
   * (publishedVia 'lo' or 'forwarder').
   */
  loopback?: boolean | 'published';
  /** Add lo's counters into `total` too, when it is listed (default false). */
  loopbackInTotal?: boolean;
}
