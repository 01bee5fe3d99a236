export { buildNetworkSettings } from './inspect.js';
export {
  Attachment,
  type GcReport,
  Networking,
  type NetworkingOptions,
  NoSuchContainerError,
} from './networking.js';
export { checkContainerId, defaultStateDir, StateFileError, StateStore } from './state.js';
export { type InterfaceRates, statsRates, summarizeStats } from './stats.js';
export type * from './types.js';
