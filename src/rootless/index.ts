export {
  type ContainerAddress,
  checkContainerAddress,
  containerAddressProblem,
} from './container-address.js';
export { type EngineExit, EngineProcess, type EngineProcessInit } from './engine-process.js';
export {
  checkRootlessPorts,
  type EngineTarget,
  pastaContainerAddress,
  type RootlessEngines,
  slirpGuestAddress,
  startPasta,
  startSlirp4netns,
  stopEngines,
} from './engines.js';
export {
  EngineMissingError,
  type EngineName,
  EngineProbeError,
  EngineStartError,
  type EngineStartFailure,
  type EngineStartInfo,
  engineFailureHint,
  ForwarderProcessError,
  PastaAddressError,
  Slirp4netnsApiError,
  Slirp4netnsApiIoError,
  Slirp4netnsApiReplyError,
} from './errors.js';
export { findExecutable } from './executable.js';
export {
  expandMappings,
  PortForwarder,
  type PortForwarderOptions,
  PortInUseError,
} from './forwarder/forwarder.js';
export {
  type ForwardedPort,
  type ForwardedPortStats,
  type ForwarderJob,
  type ForwarderStats,
  parseForwarderJob,
} from './forwarder/job.js';
export { type DetachedForwarderOptions, DetachedPortForwarder } from './forwarder/process.js';
export { KeeperError, type KeeperInfo, type KeeperOptions, startKeeper } from './keeper/keeper.js';
export {
  buildPastaArgs,
  checkPastaOptionsForRoot,
  type ParsePastaOptionsOptions,
  type PastaArgsInput,
  type PastaOptions,
  type PastaTarget,
  parsePastaOptions,
  pastaPortSpec,
  validatePastaPortSpec,
} from './pasta/options.js';
export {
  DEFAULT_PASTA_START_TIMEOUT_MS,
  Pasta,
  type PastaExit,
  type PastaStartOptions,
} from './pasta/pasta.js';
export {
  type PastaBinary,
  parsePastaVersion,
  pastaSplicesLoopback,
  probePasta,
} from './pasta/probe.js';
export {
  addHostfwdRequest,
  DEFAULT_SLIRP_API_TIMEOUT_MS,
  parseSlirpApiReply,
  Slirp4netnsApi,
  type SlirpApiRequest,
  type SlirpPortForward,
  type SlirpPortForwardEntry,
  slirpApiRoundTrip,
} from './slirp4netns/api.js';
export {
  buildSlirp4netnsArgs,
  DEFAULT_SLIRP4NETNS_MTU,
  type PortHandler,
  parseSlirp4netnsOptions,
  SLIRP4NETNS_EXIT_FD,
  SLIRP4NETNS_READY_FD,
  SLIRP4NETNS_TAP,
  type Slirp4netnsArgsInput,
  type Slirp4netnsOptions,
  type Slirp4netnsTarget,
} from './slirp4netns/options.js';
export {
  parseSlirp4netnsHelp,
  parseSlirp4netnsVersion,
  probeSlirp4netns,
  type Slirp4netnsBinary,
  type Slirp4netnsFeatures,
  type Slirp4netnsVersion,
} from './slirp4netns/probe.js';
export {
  DEFAULT_SLIRP4NETNS_START_TIMEOUT_MS,
  Slirp4netns,
  type Slirp4netnsExit,
  type Slirp4netnsStartOptions,
} from './slirp4netns/slirp4netns.js';
export {
  DEFAULT_USERNS_TIMEOUT_MS,
  type HelperExit,
  UserNamespace,
  UserNamespaceError,
  type UserNamespaceOptions,
} from './userns/userns.js';
