export {
  type ConnectOptions,
  defaultNetnsDir,
  type LinkStatsOptions,
  type LinkStatsSweep,
  type ListenOptions,
  type NamespaceEntry,
  type NamespaceLocation,
  NetworkNamespace,
  namespacePath,
  type SocketRequest,
  type SocketSource,
  userRuntimeDir,
} from './namespace.js';
export {
  decodeAddresses,
  decodeLinkStats,
  decodeLinks,
  encodeGetAddr,
  encodeGetLink,
  type InterfaceAddress,
  type Link,
  type LinkStats,
  type LinkStatsField,
  linkStatsFields,
  type OperState,
} from './rtnl.js';
export type { Neighbor, NetlinkEvent, Route } from './rtnl-events.js';
export type { SocketType } from './sockaddr.js';
export { NetlinkWatch, type WatchOptions } from './watch.js';
