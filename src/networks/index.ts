/**
 * Networks as objects, like `podman network`: create, list, inspect,
 * remove and prune, stored as podman 4's CNI backend stores them (one
 * NAME.conflist per network in the CNI config dir).
 */
export {
  buildConflist,
  DNS_DOMAIN,
  type NetworkDriver,
  type NetworkInfo,
  type NetworkRoute,
  type NetworkSubnet,
  networkFromConflist,
  networkId,
} from './conflist.js';
export { NetworkError, type NetworkErrorCode } from './errors.js';
export {
  type NetworkContainer,
  type NetworkContainerInterface,
  type NetworkFilters,
  type NetworkInspect,
  Networks,
  type NetworksOptions,
} from './networks.js';
export { type NetworkCreateOptions, planNetwork } from './plan.js';
