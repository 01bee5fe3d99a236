/**
 * podnet: container networking for Node.js on Linux.
 * @packageDocumentation
 */

export * from './cni/index.js';
export { type ChannelName, channelNames } from './diagnostics.js';
export {
  AbortError,
  ClosedError,
  InvalidArgumentError,
  isPodnetError,
  LinkNotFoundError,
  NetlinkDecodeError,
  NotANamespaceError,
  PodnetError,
  type PodnetErrorOptions,
  PodnetSystemError,
  type SystemErrorInfo,
} from './errors.js';
export * from './netns/index.js';
export * from './network/index.js';
export * from './rootless/index.js';
