export { Attachment, type StatsFrame, type WatchStatsOptions } from './attachment.js';
export type { GcReport } from './gc.js';
export { buildNetworkSettings } from './inspect.js';
export { ContainerBusyError } from './lock.js';
export { Networking, type NetworkingOptions } from './networking.js';
export { type DriverChoice, NoSuchContainerError } from './plan.js';
export {
  ContainerExistsError,
  checkContainerId,
  defaultStateDir,
  StateFileError,
  StateStore,
} from './state.js';
export {
  type ContainerFrame,
  type InterfaceRates,
  type InterfaceWatch,
  statsRates,
  summarizeStats,
  type WatchClock,
  watchFrames,
} from './stats.js';
export type * from './types.js';
export { TeardownError } from './undo.js';
