// Every ERR_PODNET_* code podnet throws, each a literal here and nowhere
// built at run time: a code is part of the contract, so adding or renaming
// one is a change to this table (test/unit/error-codes.test.ts checks that
// the source uses exactly these). Facts about the engine, network or
// container go in the error's fields, not in its code.
import { constants } from 'node:os';

/** Every `ERR_PODNET_*` code, with what it means. */
export const PODNET_ERROR_CODES = {
  ERR_PODNET_ABORTED: 'the operation was aborted through its AbortSignal',
  ERR_PODNET_ADDRESS_TAKEN: 'the static address asked for is already leased in the network',
  ERR_PODNET_ALREADY_CONNECTED: 'the container is already connected to that network',
  ERR_PODNET_BAD_STATE: 'a container state file is unreadable or not one podnet wrote',
  ERR_PODNET_BRIDGE_CONFLICT: 'the bridge name is taken by a link of another kind',
  ERR_PODNET_CANNOT_CONNECT:
    "the container's networks cannot change (its mode has none, or its setup did not complete)",
  ERR_PODNET_CLOSED: 'the handle was already closed',
  ERR_PODNET_CLUSTER_EXISTS: 'a cluster of that name is already registered',
  ERR_PODNET_CLUSTER_NOT_FOUND: 'no registered cluster of that name',
  ERR_PODNET_CNI_ATTACHMENT: 'a CNI attachment (container ID, ifName, netns, args) is invalid',
  ERR_PODNET_CNI_CACHE: 'a CNI result cache file is unusable',
  ERR_PODNET_CNI_CONFIG: 'a CNI network configuration is invalid, or names a plugin not found',
  ERR_PODNET_CNI_GC: 'CNI GC carried on past failures; all of them are in `errors`',
  ERR_PODNET_CNI_NETWORK_NOT_FOUND: 'no CNI network of that name in the configuration directory',
  ERR_PODNET_CNI_NO_CACHED_RESULT: 'CHECK found no cached ADD result for the attachment',
  ERR_PODNET_CNI_OUTPUT: 'a CNI plugin wrote output that is not a valid answer',
  ERR_PODNET_CNI_PLUGIN: "a CNI plugin reported an error (the spec's code is in `cniCode`)",
  ERR_PODNET_CNI_TIMEOUT: 'a CNI plugin did not finish within its deadline and was killed',
  ERR_PODNET_CNI_UNSUPPORTED: "the operation does not exist in the network's CNI version",
  ERR_PODNET_CONTAINER_BUSY: "another process holds the container's lock past the deadline",
  ERR_PODNET_CONTAINER_EXISTS: 'the container ID already has a network (or one being set up)',
  ERR_PODNET_DEMO: '`podnet demo` left something behind',
  ERR_PODNET_DRIVER_UNSUPPORTED:
    'the native driver cannot serve that network config (the message says what it lacks)',
  ERR_PODNET_DUPLICATE_LEASE: 'the container interface already holds an address in the network',
  ERR_PODNET_ENGINE_MISSING:
    'the rootless engine (`engine`: slirp4netns or pasta) is not installed',
  ERR_PODNET_ENGINE_PROBE: 'the binary does not answer like the engine named in `engine`',
  ERR_PODNET_ENGINE_START: 'the engine named in `engine` did not start or become ready (`reason`)',
  ERR_PODNET_EXEC_HELPER:
    'the exec helper (ns.spawn, CNI plugins in a namespace) sent a status podnet cannot read',
  ERR_PODNET_FORWARDER: 'a detached port forwarder gave no usable report',
  ERR_PODNET_FORWARDER_TIMEOUT: 'a detached port forwarder did not report within its deadline',
  ERR_PODNET_INTERNAL: "the CLI met an error that is not podnet's own (a bug: please report it)",
  ERR_PODNET_INVALID_ARGUMENT: 'an option or argument is invalid; nothing was changed',
  ERR_PODNET_INVALID_INPUT: 'a file or reply the CLI read does not have the expected shape',
  ERR_PODNET_IPAM_BUSY: "another process holds the network's IPAM lock past the deadline",
  ERR_PODNET_KEEPER: 'a keeper process gave no usable report',
  ERR_PODNET_KEEPER_TIMEOUT: 'a keeper process did not report within its deadline',
  ERR_PODNET_LINK_NOT_FOUND: 'no interface of that name in the namespace',
  ERR_PODNET_MISSING_PEER: 'an optional peer dependency the feature needs is not installed',
  ERR_PODNET_NAMESPACE_CYCLE: 'containers that share namespaces name each other in a cycle',
  ERR_PODNET_NAMESPACE_GONE: "a rootless container's namespaces are gone (their helper exited)",
  ERR_PODNET_NEEDS_ROOT: 'the network mode needs root',
  ERR_PODNET_NETLINK_DECODE: 'a netlink reply could not be decoded',
  ERR_PODNET_NETWORK_BUSY:
    "another process holds the CNI config dir's network lock past the deadline",
  ERR_PODNET_NETWORK_EXISTS: 'a network of that name already exists in the CNI config dir',
  ERR_PODNET_NETWORK_IN_USE: 'containers are attached to the network (remove it with force)',
  ERR_PODNET_NETWORK_OPTION: 'a network option is unknown, invalid, or not one the driver takes',
  ERR_PODNET_NFT: "podnet's nftables table refused a batch (`errno`, the message in `step`)",
  ERR_PODNET_NOT_A_NAMESPACE: 'the path exists but is not a network namespace',
  ERR_PODNET_NO_ADDON:
    'the native addon has no build for this platform (the message says how to make one)',
  ERR_PODNET_NO_FREE_ADDRESS: 'a range set of the network has no address left to lease',
  ERR_PODNET_NO_FREE_SUBNET:
    "every subnet of podman's default pools is used by a network or a route",
  ERR_PODNET_NOT_CONNECTED: 'the container is not connected to that network',
  ERR_PODNET_NO_SUCH_CONTAINER: 'no state for that container ID',
  ERR_PODNET_PASTA_ADDRESS: 'pasta gave the namespace no address the port forwarder may dial',
  ERR_PODNET_PORT_IN_USE: 'a host port to forward is already taken',
  ERR_PODNET_SLIRP4NETNS_API: 'the slirp4netns API answered a request with an error',
  ERR_PODNET_SLIRP4NETNS_API_IO: 'the slirp4netns API socket could not be reached in time',
  ERR_PODNET_SLIRP4NETNS_API_REPLY: 'the slirp4netns API sent a malformed reply',
  ERR_PODNET_SUBNET_OVERLAP:
    "a subnet overlaps another of the network's, another network's or a host route",
  ERR_PODNET_TEARDOWN:
    'teardown, rollback or cleanup carried on past failures; all are in `errors`',
  ERR_PODNET_UNSAFE_PATH: 'a directory or recorded path is not safe to use (owner, mode, kind)',
  ERR_PODNET_USAGE: 'the command line is wrong (unknown command or flag, a missing value)',
  ERR_PODNET_USERNS: 'the user namespace helper could not be started or stopped answering',
} as const;

/** A podnet error code: one of {@link PODNET_ERROR_CODES}. */
export type PodnetErrorCode = keyof typeof PODNET_ERROR_CODES;

/**
 * The code of a failed system call: its errno name (`ENOENT`), as Node's own
 * system errors have, or Node's text for an errno it cannot name.
 */
export type SystemErrorCode = keyof typeof constants.errno | `Unknown system error ${number}`;

/** True when `value` is one of podnet's codes. */
export function isPodnetErrorCode(value: unknown): value is PodnetErrorCode {
  return typeof value === 'string' && Object.hasOwn(PODNET_ERROR_CODES, value);
}

/** True when `value` is an errno name this system knows (`ENOENT`, `EPERM`, ...). */
export function isSystemErrorCode(value: unknown): value is SystemErrorCode {
  return typeof value === 'string' && Object.hasOwn(constants.errno, value);
}
