import { AggregatePodnetError, PodnetError, type PodnetErrorOptions } from '../errors.js';

/** The CNI commands a runtime sends to plugins. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';

/** Which plugin call an error came from. */
export interface CniPluginCall {
  /** The plugin's `type` (its binary name). */
  plugin: string;
  /** The command that was sent. */
  command: CniCommand;
  /** The network list's name, when the call was for one. */
  network?: string;
}

function where(call: CniPluginCall): string {
  const net = call.network === undefined ? '' : ` for network '${call.network}'`;
  return `CNI plugin '${call.plugin}' ${call.command}${net}`;
}

/**
 * A plugin reported an error with the spec's error JSON
 * (`{cniVersion, code, msg, details}`), or failed without one. `cniCode` and
 * `msg`/`details` are the plugin's own, so callers can branch on the spec's
 * well-known codes (1 incompatible version, 7 invalid config, 11 try again
 * later, 50/51 from STATUS, ...).
 */
export class CniError extends PodnetError {
  /** The plugin's numeric error code (0 when it gave none). */
  readonly cniCode: number;
  /** The plugin's short message. */
  readonly msg: string;
  /** The plugin's longer explanation, if any. */
  readonly details: string;
  /** The plugin's `type`. */
  readonly plugin: string;
  /** The command that failed. */
  readonly command: CniCommand;
  /** The network list's name, when there is one. */
  readonly network?: string;

  constructor(
    call: CniPluginCall,
    info: { code: number; msg: string; details?: string },
    options: PodnetErrorOptions = {},
  ) {
    const details = info.details ?? '';
    super(
      'ERR_PODNET_CNI_PLUGIN',
      `${where(call)} failed: ${info.msg}${details === '' ? '' : `; ${details}`} (code ${info.code})`,
      options,
    );
    this.cniCode = info.code;
    this.msg = info.msg;
    this.details = details;
    this.plugin = call.plugin;
    this.command = call.command;
    if (call.network !== undefined) this.network = call.network;
  }
}

/**
 * A plugin's output could not be used: not JSON, not a valid result for its
 * version, or larger than the output cap. Nothing of it was used.
 */
export class CniOutputError extends PodnetError {
  /** The plugin's `type`. */
  readonly plugin: string;
  /** The command whose output was bad. */
  readonly command: CniCommand;

  constructor(call: CniPluginCall, problem: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_CNI_OUTPUT', `${where(call)} gave unusable output: ${problem}`, options);
    this.plugin = call.plugin;
    this.command = call.command;
  }
}

/** A plugin call ran past its deadline; the plugin and its process group were killed. */
export class CniTimeoutError extends PodnetError {
  /** The plugin's `type`. */
  readonly plugin: string;
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;

  constructor(call: CniPluginCall, timeoutMs: number) {
    super('ERR_PODNET_CNI_TIMEOUT', `${where(call)} did not finish within ${timeoutMs} ms; killed`);
    this.plugin = call.plugin;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * A network configuration is invalid. `file` names where it came from (a path,
 * or `<inline>` / `<embedded>`) and `field` the offending field as a JSON path
 * (`plugins[2].type`).
 */
export class CniConfigError extends PodnetError {
  /** Where the configuration came from. */
  readonly file: string;
  /** The offending field, e.g. `name` or `plugins[0].type`. */
  readonly field: string;

  constructor(file: string, field: string, problem: string, options: PodnetErrorOptions = {}) {
    super(
      'ERR_PODNET_CNI_CONFIG',
      `invalid CNI configuration ${file}: ${field}: ${problem}`,
      options,
    );
    this.file = file;
    this.field = field;
  }
}

/** No network configuration with the requested name or path exists. */
export class CniNetworkNotFoundError extends PodnetError {
  /** The name or path that was asked for. */
  readonly network: string;

  constructor(network: string, confDir: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_CNI_NETWORK_NOT_FOUND', `no CNI network '${network}' in ${confDir}`, options);
    this.network = network;
  }
}

/** An attachment (container ID, interface name, netns, args) is invalid. */
export class CniAttachmentError extends PodnetError {
  /** The offending attachment field, e.g. `containerId`. */
  readonly field: string;

  constructor(field: string, problem: string) {
    super('ERR_PODNET_CNI_ATTACHMENT', `invalid CNI attachment: ${field}: ${problem}`);
    this.field = field;
  }
}

/** The list's cniVersion does not support the requested command (CHECK before 0.4.0, ...). */
export class CniUnsupportedError extends PodnetError {
  constructor(command: CniCommand, network: string, cniVersion: string) {
    super(
      'ERR_PODNET_CNI_UNSUPPORTED',
      `CNI ${command} is not supported by network '${network}' at cniVersion ${cniVersion}`,
    );
  }
}

/** No cached ADD result exists where one is required (CHECK). */
export class CniCacheMissError extends PodnetError {
  constructor(network: string, containerId: string, ifName: string) {
    super(
      'ERR_PODNET_CNI_NO_CACHED_RESULT',
      `no cached CNI result for network '${network}', container '${containerId}', interface '${ifName}'`,
    );
  }
}

/** A cache file exists but cannot be used (not JSON, wrong kind, malformed result). */
export class CniCacheError extends PodnetError {
  /** The cache file. */
  readonly path: string;

  constructor(path: string, problem: string, options: PodnetErrorOptions = {}) {
    super('ERR_PODNET_CNI_CACHE', `unusable CNI cache file ${path}: ${problem}`, options);
    this.path = path;
  }
}

/**
 * Plugin calls failed during one GC, which carried on past each: `errors`
 * holds every failure in the order they happened, the first is `cause`.
 */
export class CniGcError extends AggregatePodnetError {
  /** The network that was collected. */
  readonly network: string;

  constructor(network: string, errors: readonly unknown[]) {
    super('ERR_PODNET_CNI_GC', `CNI GC of network '${network}'`, errors);
    this.network = network;
  }
}
