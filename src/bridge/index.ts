// podnet's own bridge driver: see driver.ts.
export { type AttachRequest, BridgeDriver, type DetachRequest } from './driver.js';
export {
  BridgeConflictError,
  checkNetwork,
  SubnetOverlapError,
} from './link.js';
export {
  type BridgeNetwork,
  type BridgeRange,
  type BridgeRoute,
  bridgeNetworkOf,
  DriverUnsupportedError,
  HOST_LOCAL_DATA_DIR,
} from './network.js';
export { PodnetTable } from './nft/index.js';
