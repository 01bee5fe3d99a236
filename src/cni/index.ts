/**
 * podnet's CNI runtime: the equivalent of libcni in TypeScript. Load network
 * configuration lists, run the plugins through the spec's exec protocol,
 * convert results between spec versions, and keep libcni's result cache.
 */
export { CACHE_KIND, type CachedAttachment, type CacheEntry, ResultCache } from './cache.js';
export {
  type CniNetworkList,
  type CniPluginConfig,
  parseNetworkList,
  promoteSingleConfig,
} from './config.js';
export { DEFAULT_NETWORK, DEFAULT_NETWORK_CONFIG } from './default-network.js';
export {
  CniAttachmentError,
  CniCacheError,
  CniCacheMissError,
  type CniCommand,
  CniConfigError,
  CniError,
  CniGcError,
  CniNetworkNotFoundError,
  CniOutputError,
  type CniPluginCall,
  CniTimeoutError,
  CniUnsupportedError,
} from './errors.js';
export {
  defaultExecutor,
  type ExecPluginOptions,
  type PluginExecutor,
  type PluginOutput,
  spawnPlugin,
} from './invoke/exec.js';
export type { PluginExecContext } from './invoke/plugin.js';
export {
  type CniDns,
  type CniInterface,
  type CniInterface040,
  type CniIpConfig,
  type CniIpConfig020,
  type CniIpConfig040,
  type CniResult,
  type CniResult020,
  type CniResult040,
  type CniResult100,
  type CniRoute,
  convertResult,
  type NormalizedCniResult,
  normalizeResult,
  parseResult,
} from './result.js';
export {
  type CniAddOptions,
  type CniAddProgress,
  type CniAttachment,
  type CniCallOptions,
  type CniDelOptions,
  type CniGcAttachment,
  type CniGcOptions,
  type CniPluginVersionInfo,
  CniRuntime,
  type CniRuntimeOptions,
} from './runtime.js';
export { CNI_VERSIONS, type CniVersion, CURRENT_CNI_VERSION } from './version.js';
