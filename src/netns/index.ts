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
export {
  decodeRoutes,
  encodeDump,
  type Neighbor,
  type NetlinkEvent,
  type Route,
} from './rtnl-events.js';
export {
  type BridgeRequest,
  encodeDelLink,
  encodeNewAddr,
  encodeNewBridge,
  encodeNewRoute,
  encodeNewVeth,
  encodeSetHairpin,
  encodeSetIndexUp,
  encodeSetInetConf,
  IPV4_DEVCONF,
  type RouteRequest,
  type VethRequest,
} from './rtnl-write.js';
export type { SocketType } from './sockaddr.js';
export type { NamespaceProcess, NamespaceSpawnOptions } from './spawn.js';
export { NetlinkWatch, type WatchOptions } from './watch.js';
