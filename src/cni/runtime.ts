import { isAbsolute } from 'node:path';
import { publish } from '../diagnostics.js';
import { InvalidArgumentError } from '../errors.js';
import { native, openNetnsFd } from '../native.js';
import { type CachedAttachment, ResultCache } from './cache.js';
import { type CniNetworkList, loadNetworkFrom, scanNetworks } from './config.js';
import { DEFAULT_NETWORK } from './default-network.js';
import {
  CniAttachmentError,
  CniCacheError,
  CniCacheMissError,
  type CniCommand,
  CniConfigError,
  CniGcError,
  CniNetworkNotFoundError,
  CniOutputError,
  type CniPluginCall,
  CniUnsupportedError,
} from './errors.js';
import { baseEnv, pluginEnv } from './invoke/env.js';
import {
  defaultExecutor,
  type ExecPluginOptions,
  type PluginExecutor,
  type PluginOutput,
} from './invoke/exec.js';
import { findPlugin, findPlugins } from './invoke/find.js';
import { parseJson, parsePluginResult } from './invoke/output.js';
import { invokePlugin } from './invoke/plugin.js';
import { KeyedLocks } from './lock.js';
import { type CniResult, convertResult, parseResult, ResultFormatError } from './result.js';
import { cniArgProblem, ifNameProblem, nameProblem, pluginTypeProblem } from './validate.js';
import { type CniVersion, CURRENT_CNI_VERSION, isCniVersion, versionAtLeast } from './version.js';

/** Options of a {@link CniRuntime}; every path has libcni's default. */
export interface CniRuntimeOptions {
  /** Where plugin binaries are looked up, in order. Default `['/usr/lib/cni', '/opt/cni/bin']`. */
  pluginDirs?: readonly string[];
  /** Where network configuration files live. Default `/etc/cni/net.d`. */
  confDir?: string;
  /** The result cache root (`results/` is under it). Default `/var/lib/cni`. */
  cacheDir?: string;
  /** Deadline of each plugin call, in milliseconds. Default 60 000. */
  timeoutMs?: number;
  /** Largest stdout accepted from a plugin, in bytes. Default 4 MiB. */
  maxOutputBytes?: number;
  /**
   * The network returned when confDir holds none (and found by its name by
   * loadNetwork). Default: the embedded {@link DEFAULT_NETWORK}; `null` for none.
   */
  defaultNetwork?: CniNetworkList | null;
  /**
   * Extra environment for plugins. Plugins otherwise get only `PATH` (they run
   * iptables and friends) and the CNI_* variables.
   */
  env?: Readonly<Record<string, string>>;
  /** Replaces process execution (tests, or running plugins elsewhere). */
  executor?: PluginExecutor;
  /**
   * The network namespace every plugin process of this runtime runs in
   * (ADD, DEL, CHECK, GC, STATUS, VERSION), as an absolute path such as
   * `/run/netns/NAME`: a node's namespace, where the plugins make their
   * bridge and routes as they would in a host's. Opened and checked at the
   * start of each call (a file that is not a network namespace is a
   * NotANamespaceError before any plugin runs) and entered through that
   * fd by podnet-exec. Default: the caller's own. With `executor`, the
   * executor gets it as `options.netns` and decides.
   */
  netns?: string;
}

/** One container interface on one network: libcni's RuntimeConf. */
export interface CniAttachment {
  /** The container's ID (the spec's name pattern). */
  containerId: string;
  /** Path of the container's network namespace (may be stale or '' for DEL). */
  netns: string;
  /** The interface name inside the namespace, e.g. `eth0`. */
  ifName: string;
  /** CNI_ARGS, as an object or as ordered pairs. */
  args?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  /** Capability arguments; each plugin gets the ones it declares (portMappings, ips, mac, ...). */
  capabilityArgs?: Readonly<Record<string, unknown>>;
}

/** Per-call options. */
export interface CniCallOptions {
  /** Aborting kills the running plugin; an aborted ADD is still rolled back. */
  signal?: AbortSignal;
  /** Overrides the runtime's per-plugin deadline for this call. */
  timeoutMs?: number;
}

/**
 * Where an ADD has got to: reported for each plugin of the list once its
 * process exists and before it reads its config (so before it can act).
 */
export interface CniAddProgress {
  /** Index of the plugin about to run. */
  plugin: number;
  /** What it gets as prevResult (undefined for the first plugin). */
  prevResult: CniResult | undefined;
  /** Its pid, which leads its own process group (its children are in it too). */
  pid: number;
}

/** Options of {@link CniRuntime.add}. */
export interface CniAddOptions extends CniCallOptions {
  /**
   * Awaited for each plugin once its process exists, before it reads its
   * config. A caller that keeps a journal records how far the chain got
   * and the plugin's process group, so that after a crash the group can be
   * killed and a DEL asks exactly the plugins that ran, with the last
   * result known (the result cache is only written once the whole chain has
   * succeeded). If it throws, the plugin is killed and the ADD fails (and is
   * rolled back).
   */
  onPlugin?: (progress: CniAddProgress) => Promise<void> | void;
}

/** Options of {@link CniRuntime.del}. */
export interface CniDelOptions extends CniCallOptions {
  /**
   * Index of the last plugin an interrupted ADD started: DEL asks that one
   * and those before it, not the plugins that never ran (some, such as
   * firewall, refuse a DEL without a prevResult). Default: all of them.
   */
  reached?: number;
  /** prevResult for DEL when the cache holds none (a journal's last known result). */
  prevResult?: CniResult;
}

/** An attachment GC must keep (the spec's `cni.dev/valid-attachments` entries). */
export interface CniGcAttachment {
  containerId: string;
  ifName: string;
}

/** Options of {@link CniRuntime.gc}. */
export interface CniGcOptions extends CniCallOptions {
  /** Attachments still in use; every other cached attachment on the network is DELeted. */
  validAttachments?: readonly CniGcAttachment[];
}

/** A plugin's answer to VERSION. */
export interface CniPluginVersionInfo {
  /** The version the plugin answered in. */
  cniVersion: string;
  /** Every spec version the plugin accepts. */
  supportedVersions: string[];
}

/** The namespace of one call's plugins (see ExecPluginOptions.netns). */
type PluginNetns = ExecPluginOptions['netns'];

/**
 * The `netns` option, checked: a string naming an absolute path (what the
 * runtime opens at each call), or undefined.
 */
function checkNetnsOption(netns: unknown): string | undefined {
  if (netns === undefined) return undefined;
  if (typeof netns !== 'string' || !isAbsolute(netns) || netns.includes('\0')) {
    throw new InvalidArgumentError(
      `CniRuntime netns must be the absolute path of a network namespace (/run/netns/NAME), not ${JSON.stringify(netns)}`,
    );
  }
  return netns;
}

interface Prepared {
  containerId: string;
  netns: string;
  ifName: string;
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
}

/**
 * A CNI runtime, the TypeScript equivalent of libcni: network configuration
 * lists in, plugin processes run by the spec's exec protocol, results out,
 * with libcni's on-disk result cache. It holds no global state: everything is
 * in its options. Operations on one (network, container, interface) run one
 * at a time; different containers run in parallel; GC runs alone on its network.
 */
export class CniRuntime {
  /** Plugin lookup path. */
  readonly pluginDirs: readonly string[];
  /** Configuration directory. */
  readonly confDir: string;
  /** The result cache. */
  readonly cache: ResultCache;
  /** Default deadline of each plugin call. */
  readonly timeoutMs: number;
  /** Stdout cap per plugin call. */
  readonly maxOutputBytes: number;
  /** The network namespace plugins run in; undefined for the caller's own. */
  readonly netns: string | undefined;
  readonly #defaultNetwork: CniNetworkList | null;
  readonly #env: Readonly<Record<string, string>>;
  readonly #exec: PluginExecutor;
  readonly #networkLocks = new KeyedLocks();
  readonly #attachmentLocks = new KeyedLocks();

  constructor(options: CniRuntimeOptions = {}) {
    this.pluginDirs = [...(options.pluginDirs ?? ['/usr/lib/cni', '/opt/cni/bin'])];
    this.confDir = options.confDir ?? '/etc/cni/net.d';
    this.cache = new ResultCache(options.cacheDir ?? '/var/lib/cni');
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxOutputBytes = options.maxOutputBytes ?? 4 * 1024 * 1024;
    this.#defaultNetwork =
      options.defaultNetwork === undefined ? DEFAULT_NETWORK : options.defaultNetwork;
    this.#env = baseEnv(options.env);
    this.#exec = options.executor ?? defaultExecutor;
    this.netns = checkNetnsOption(options.netns);
  }

  /**
   * Every network in confDir (libcni's order; the first file naming a network
   * wins), or the default network when there is none. Files that fail to load
   * are skipped, unless `strict`, which throws the first such error.
   */
  async listNetworks(options: { strict?: boolean } = {}): Promise<CniNetworkList[]> {
    const { networks, invalid } = await scanNetworks(this.confDir);
    if (options.strict && invalid.length > 0) throw invalid[0]!.error;
    if (networks.length === 0 && this.#defaultNetwork !== null) return [this.#defaultNetwork];
    return networks;
  }

  /**
   * Loads a network by name from confDir, or by path (anything with a `/`).
   * The default network is found by its name when confDir has no such file.
   */
  async loadNetwork(nameOrPath: string): Promise<CniNetworkList> {
    try {
      return await loadNetworkFrom(this.confDir, nameOrPath);
    } catch (error) {
      if (error instanceof CniNetworkNotFoundError && this.#defaultNetwork?.name === nameOrPath) {
        return this.#defaultNetwork;
      }
      throw error;
    }
  }

  /**
   * ADD: runs the list's plugins in order, each getting the previous one's
   * result, and caches the final result. If any plugin fails, DEL is run for
   * the whole list before the error is thrown, so a failed ADD leaves nothing
   * behind (should that DEL fail too, the cache entry is kept so DEL or GC can
   * finish later). Returns the result in the list's cniVersion.
   */
  async add(
    list: CniNetworkList,
    attachment: CniAttachment,
    options: CniAddOptions = {},
  ): Promise<CniResult> {
    const a = this.#prepare(list, attachment, 'ADD');
    const paths = findPlugins(list, this.pluginDirs);
    return this.#locked(list.name, a, async (netns) => {
      let prev: CniResult | undefined;
      let reached = -1;
      try {
        for (const [i, plugin] of list.plugins.entries()) {
          const prevResult = prev;
          const out = await this.#callPlugin(
            list,
            paths,
            i,
            'ADD',
            a,
            prev,
            netns,
            options,
            async (pid) => {
              await options.onPlugin?.({ plugin: i, prevResult, pid });
              // From here the plugin may act: it is undone on failure.
              reached = i;
            },
          );
          const call = { plugin: plugin.type, command: 'ADD' as const, network: list.name };
          prev = parsePluginResult(call, out.stdout, list.cniVersion);
        }
        if (prev === undefined)
          throw new CniConfigError(list.source, 'plugins', 'must hold at least one plugin');
        await this.cache.write({
          network: list.name,
          containerId: a.containerId,
          ifName: a.ifName,
          netns: a.netns,
          args: a.args,
          capabilityArgs: a.capabilityArgs,
          config: list.bytes,
          result: prev,
        });
      } catch (error) {
        await this.#rollback(list, a, paths, prev, reached, netns, options.timeoutMs);
        throw error;
      }
      publish('podnet:cni:result', {
        network: list.name,
        containerId: a.containerId,
        ifName: a.ifName,
        result: prev,
      });
      return prev;
    });
  }

  /**
   * DEL: runs the list's plugins in reverse order with the cached result as
   * prevResult (from 0.4.0), then removes the cache entry. A missing netns
   * and a missing or corrupt cache entry are tolerated; DEL may be repeated.
   * Stops at the first plugin error and keeps the cache entry for a retry.
   */
  async del(
    list: CniNetworkList,
    attachment: CniAttachment,
    options: CniDelOptions = {},
  ): Promise<void> {
    const a = this.#prepare(list, attachment, 'DEL');
    const paths = findPlugins(list, this.pluginDirs);
    await this.#locked(list.name, a, (netns) => this.#del(list, a, paths, netns, options));
  }

  /**
   * CHECK (0.4.0 and later): asks every plugin, in order, whether the
   * attachment is still as the cached result says. Does nothing when the
   * list sets disableCheck. Throws CniCacheMissError without a cached result.
   */
  async check(
    list: CniNetworkList,
    attachment: CniAttachment,
    options: CniCallOptions = {},
  ): Promise<void> {
    if (!versionAtLeast(list.cniVersion, '0.4.0'))
      throw new CniUnsupportedError('CHECK', list.name, list.cniVersion);
    if (list.disableCheck) return;
    const a = this.#prepare(list, attachment, 'CHECK');
    const paths = findPlugins(list, this.pluginDirs);
    await this.#locked(list.name, a, async (netns) => {
      const cached = await this.#cachedResult(list, a, false);
      if (cached === undefined) throw new CniCacheMissError(list.name, a.containerId, a.ifName);
      for (let i = 0; i < list.plugins.length; i++)
        await this.#callPlugin(list, paths, i, 'CHECK', a, cached, netns, options);
    });
  }

  /**
   * GC, as libcni does it: first DEL every cached attachment of this network
   * that is not in `validAttachments`, then (1.1.0 lists) send GC to every
   * plugin with `cni.dev/valid-attachments`. Nothing at all when the list
   * sets disableGC. Excludes ADD and DEL on the network while it runs. Every
   * step is tried; failures are thrown together as a CniGcError.
   */
  async gc(list: CniNetworkList, options: CniGcOptions = {}): Promise<void> {
    if (list.disableGC) return;
    this.#checkList(list);
    const paths = findPlugins(list, this.pluginDirs);
    const valid = (options.validAttachments ?? []).map((x) => ({
      containerID: x.containerId,
      ifname: x.ifName,
    }));
    const keep = new Set(valid.map((x) => `${x.containerID}\0${x.ifname}`));
    const errors: unknown[] = [];
    await this.#inNetns(async (netns) => {
      const release = await this.#networkLocks.acquire(list.name, true);
      try {
        for (const stale of await this.cache.list({ network: list.name })) {
          if (keep.has(`${stale.containerId}\0${stale.ifName}`)) continue;
          const a: Prepared = {
            containerId: stale.containerId,
            netns: stale.netns,
            ifName: stale.ifName,
            args: stale.args,
            capabilityArgs: stale.capabilityArgs,
          };
          await this.#del(list, a, paths, netns, options).catch((error: unknown) =>
            errors.push(error),
          );
        }
        if (versionAtLeast(list.cniVersion, '1.1.0')) {
          for (const [i, plugin] of list.plugins.entries()) {
            const call = { plugin: plugin.type, command: 'GC' as const, network: list.name };
            // libcni also sends the misspelt key the spec first used (cni#1101).
            const stdin = {
              ...this.#pluginConfig(list, i, undefined, undefined),
              'cni.dev/valid-attachments': valid,
              'cni.dev/attachments': valid,
            };
            const env = pluginEnv(this.#env, 'GC', this.pluginDirs);
            await this.#invoke(call, paths[i]!, stdin, env, undefined, netns, options).catch(
              (error: unknown) => errors.push(error),
            );
          }
        }
      } finally {
        release();
      }
    });
    if (errors.length > 0) throw new CniGcError(list.name, errors);
  }

  /**
   * STATUS (1.1.0 lists): asks every plugin whether it can take ADDs. A
   * plugin's "not available" answer is thrown as its CniError (codes 50/51).
   * Lists before 1.1.0 have no STATUS and are reported ready, as libcni does.
   */
  async status(list: CniNetworkList, options: CniCallOptions = {}): Promise<void> {
    this.#checkList(list);
    if (!versionAtLeast(list.cniVersion, '1.1.0')) return;
    const paths = findPlugins(list, this.pluginDirs);
    await this.#inNetns(async (netns) => {
      for (const [i, plugin] of list.plugins.entries()) {
        const call = { plugin: plugin.type, command: 'STATUS' as const, network: list.name };
        const env = pluginEnv(this.#env, 'STATUS', this.pluginDirs);
        await this.#invoke(
          call,
          paths[i]!,
          this.#pluginConfig(list, i, undefined, undefined),
          env,
          undefined,
          netns,
          options,
        );
      }
    });
  }

  /**
   * The cached ADD result of an attachment in the list's cniVersion, or
   * undefined when there is none. Throws CniCacheError for a corrupt entry.
   */
  async cachedResult(
    list: CniNetworkList,
    attachment: Pick<CniAttachment, 'containerId' | 'ifName'>,
  ): Promise<CniResult | undefined> {
    const a = this.#prepare(list, { ...attachment, netns: '' }, 'DEL');
    return this.#cachedResult(list, a, false);
  }

  /**
   * Every attachment in the cache, optionally only one network's or one
   * container's (what GC and crash recovery work from).
   */
  cachedAttachments(
    filter: { network?: string; containerId?: string } = {},
  ): Promise<CachedAttachment[]> {
    return this.cache.list(filter);
  }

  /** Asks a plugin binary which spec versions it supports (VERSION). */
  async version(
    pluginType: string,
    options: CniCallOptions & { cniVersion?: CniVersion } = {},
  ): Promise<CniPluginVersionInfo> {
    const problem = pluginTypeProblem(pluginType);
    if (problem !== undefined) throw new CniAttachmentError('plugin', problem);
    const path = findPlugin(this.pluginDirs, pluginType, '<version query>', 'type');
    const call: CniPluginCall = { plugin: pluginType, command: 'VERSION' };
    const env = pluginEnv(this.#env, 'VERSION', this.pluginDirs);
    const out = await this.#inNetns((netns) =>
      this.#invoke(
        call,
        path,
        { cniVersion: options.cniVersion ?? CURRENT_CNI_VERSION },
        env,
        undefined,
        netns,
        options,
      ),
    );
    const raw = parseJson(call, out.stdout) as Partial<CniPluginVersionInfo> | null;
    const versions = raw?.supportedVersions;
    if (
      typeof raw?.cniVersion !== 'string' ||
      !Array.isArray(versions) ||
      !versions.every((x): x is string => typeof x === 'string')
    ) {
      throw new CniOutputError(call, 'not a VERSION answer ({cniVersion, supportedVersions})');
    }
    return { cniVersion: raw.cniVersion, supportedVersions: [...versions] };
  }

  async #del(
    list: CniNetworkList,
    a: Prepared,
    paths: readonly string[],
    netns: PluginNetns,
    options: CniDelOptions,
  ): Promise<void> {
    let cached: CniResult | undefined;
    if (versionAtLeast(list.cniVersion, '0.4.0'))
      cached = (await this.#cachedResult(list, a, true)) ?? options.prevResult;
    const last = Math.min(options.reached ?? list.plugins.length - 1, list.plugins.length - 1);
    for (let i = last; i >= 0; i--)
      await this.#callPlugin(list, paths, i, 'DEL', a, cached, netns, options);
    await this.cache.remove(list.name, a.containerId, a.ifName);
  }

  // DEL after a failed ADD: every plugin that ran is asked (the failed one
  // too: it may have half done its work), even after one fails, and without
  // the caller's signal (an aborted ADD must still be undone).
  async #rollback(
    list: CniNetworkList,
    a: Prepared,
    paths: readonly string[],
    prev: CniResult | undefined,
    reached: number,
    netns: PluginNetns,
    timeoutMs: number | undefined,
  ): Promise<void> {
    const cached = versionAtLeast(list.cniVersion, '0.4.0') ? prev : undefined;
    let failed = false;
    const options = timeoutMs === undefined ? {} : { timeoutMs };
    for (let i = reached; i >= 0; i--) {
      await this.#callPlugin(list, paths, i, 'DEL', a, cached, netns, options).catch(() => {
        failed = true;
      });
    }
    const entry = {
      network: list.name,
      containerId: a.containerId,
      ifName: a.ifName,
      netns: a.netns,
      args: a.args,
      capabilityArgs: a.capabilityArgs,
      config: list.bytes,
      result: prev,
    };
    await (failed
      ? this.cache.write(entry)
      : this.cache.remove(list.name, a.containerId, a.ifName)
    ).catch(() => {});
  }

  async #cachedResult(
    list: CniNetworkList,
    a: Prepared,
    tolerant: boolean,
  ): Promise<CniResult | undefined> {
    try {
      const entry = await this.cache.read(list.name, a.containerId, a.ifName);
      if (entry?.result === undefined) return undefined;
      return convertResult(parseResult(entry.result, list.cniVersion), list.cniVersion);
    } catch (error) {
      if (tolerant) return undefined;
      if (error instanceof ResultFormatError) {
        throw new CniCacheError(
          this.cache.pathFor(list.name, a.containerId, a.ifName),
          error.message,
          { cause: error },
        );
      }
      throw error;
    }
  }

  // The runtime's namespace, opened for one call: a file that is not one
  // fails here, before any plugin runs, and the fd (not the path, which
  // could be swapped meanwhile) is what every plugin of the call enters.
  // Not kept open between calls: an fd would keep a removed node's
  // namespace alive for as long as the runtime lives.
  async #inNetns<T>(fn: (netns: PluginNetns) => Promise<T>): Promise<T> {
    if (this.netns === undefined) return fn(undefined);
    const fd = await openNetnsFd(this.netns);
    try {
      return await fn({ path: this.netns, fd });
    } finally {
      native.closeFd(fd);
    }
  }

  // One attachment's call, in the runtime's namespace, under its locks.
  #locked<T>(network: string, a: Prepared, fn: (netns: PluginNetns) => Promise<T>): Promise<T> {
    return this.#inNetns((netns) => this.#lockedHere(network, a, () => fn(netns)));
  }

  async #lockedHere<T>(network: string, a: Prepared, fn: () => Promise<T>): Promise<T> {
    const releaseNetwork = await this.#networkLocks.acquire(network, false);
    try {
      const releaseAttachment = await this.#attachmentLocks.acquire(
        `${network}\0${a.containerId}\0${a.ifName}`,
        true,
      );
      try {
        return await fn();
      } finally {
        releaseAttachment();
      }
    } finally {
      releaseNetwork();
    }
  }

  // Re-checks what parseNetworkList checked: a list may also be built by hand.
  #checkList(list: CniNetworkList): void {
    const nameIssue = nameProblem(list.name);
    if (nameIssue !== undefined) throw new CniConfigError(list.source, 'name', nameIssue);
    if (!isCniVersion(list.cniVersion))
      throw new CniConfigError(
        list.source,
        'cniVersion',
        `unsupported version '${list.cniVersion}'`,
      );
    if (list.plugins.length === 0)
      throw new CniConfigError(list.source, 'plugins', 'must hold at least one plugin');
    list.plugins.forEach((p, i) => {
      const problem = pluginTypeProblem(p.type);
      if (problem !== undefined)
        throw new CniConfigError(list.source, `plugins[${i}].type`, problem);
    });
  }

  #prepare(list: CniNetworkList, attachment: CniAttachment, command: CniCommand): Prepared {
    this.#checkList(list);
    const idIssue = nameProblem(attachment.containerId);
    if (idIssue !== undefined) throw new CniAttachmentError('containerId', idIssue);
    const ifIssue = ifNameProblem(attachment.ifName);
    if (ifIssue !== undefined) throw new CniAttachmentError('ifName', ifIssue);
    if (typeof attachment.netns !== 'string')
      throw new CniAttachmentError('netns', 'must be a string');
    if (command !== 'DEL' && attachment.netns === '')
      throw new CniAttachmentError('netns', `required for ${command}`);
    const pairs: readonly (readonly [string, string])[] = Array.isArray(attachment.args)
      ? (attachment.args as readonly (readonly [string, string])[])
      : Object.entries(attachment.args ?? {});
    const args = pairs.map(([k, x]): [string, string] => {
      const problem = cniArgProblem(k, x);
      if (problem !== undefined) throw new CniAttachmentError('args', problem);
      return [k, x];
    });
    const caps = attachment.capabilityArgs ?? {};
    if (typeof caps !== 'object' || caps === null || Array.isArray(caps)) {
      throw new CniAttachmentError('capabilityArgs', 'must be an object');
    }
    return {
      containerId: attachment.containerId,
      netns: attachment.netns,
      ifName: attachment.ifName,
      args,
      capabilityArgs: { ...caps },
    };
  }

  // The spec's injection: name and cniVersion always, prevResult when there
  // is one, and runtimeConfig with exactly the capabilities the plugin
  // declares true and the caller supplied. Everything else passes through.
  #pluginConfig(
    list: CniNetworkList,
    index: number,
    a: Prepared | undefined,
    prevResult: CniResult | undefined,
  ): Record<string, unknown> {
    const plugin = list.plugins[index]!;
    const config: Record<string, unknown> = {
      ...plugin.config,
      name: list.name,
      cniVersion: list.cniVersion,
    };
    if (prevResult !== undefined) config['prevResult'] = prevResult;
    if (a !== undefined) {
      const runtimeConfig: Record<string, unknown> = {};
      for (const cap of plugin.capabilities) {
        if (Object.hasOwn(a.capabilityArgs, cap)) runtimeConfig[cap] = a.capabilityArgs[cap];
      }
      if (Object.keys(runtimeConfig).length > 0) config['runtimeConfig'] = runtimeConfig;
    }
    return config;
  }

  /**
   * Runs plugin `i` of the list for one attachment: its config (with `prev`
   * as prevResult), the attachment's environment, the runtime's deadline.
   */
  #callPlugin(
    list: CniNetworkList,
    paths: readonly string[],
    i: number,
    command: 'ADD' | 'DEL' | 'CHECK',
    a: Prepared,
    prev: CniResult | undefined,
    netns: PluginNetns,
    options: CniCallOptions,
    onSpawn?: (pid: number) => Promise<void>,
  ): Promise<PluginOutput> {
    const call = { plugin: list.plugins[i]!.type, command, network: list.name };
    const env = pluginEnv(this.#env, command, this.pluginDirs, a);
    return this.#invoke(
      call,
      paths[i]!,
      this.#pluginConfig(list, i, a, prev),
      env,
      a,
      netns,
      options,
      onSpawn,
    );
  }

  #invoke(
    call: CniPluginCall,
    path: string,
    config: Record<string, unknown>,
    env: Record<string, string>,
    a: Prepared | undefined,
    netns: PluginNetns,
    options: CniCallOptions,
    onSpawn?: (pid: number) => Promise<void>,
  ): Promise<PluginOutput> {
    return invokePlugin(call, path, config, env, {
      exec: this.#exec,
      netns,
      timeoutMs: options.timeoutMs ?? this.timeoutMs,
      maxOutputBytes: this.maxOutputBytes,
      signal: options.signal,
      onSpawn,
      containerId: a?.containerId,
      ifName: a?.ifName,
    });
  }
}
