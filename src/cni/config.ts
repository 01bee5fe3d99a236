import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { CniConfigError, CniNetworkNotFoundError } from './errors.js';
import { nameProblem, pluginTypeProblem } from './validate.js';
import {
  CNI_VERSIONS,
  type CniVersion,
  compareVersions,
  isCniVersion,
  parseSemver,
} from './version.js';

/** One plugin of a network list. */
export interface CniPluginConfig {
  /** The plugin binary's name, looked up in the plugin dirs. */
  readonly type: string;
  /** Capabilities the plugin declares true (only these get `runtimeConfig`). */
  readonly capabilities: readonly string[];
  /** The plugin's configuration object exactly as written, unknown fields included. */
  readonly config: Readonly<Record<string, unknown>>;
}

/** A validated network configuration list (a `.conflist`, or a promoted `.conf`). */
export interface CniNetworkList {
  /** The network's name. */
  readonly name: string;
  /** The spec version in effect (from `cniVersion`, or the best of `cniVersions`). */
  readonly cniVersion: CniVersion;
  /** Never send CHECK for this list. */
  readonly disableCheck: boolean;
  /** Never garbage-collect this list. */
  readonly disableGC: boolean;
  /** Do not load extra plugins from `<confDir>/<name>/*.conf`. */
  readonly loadOnlyInlinedPlugins: boolean;
  /** The plugins, in ADD order. */
  readonly plugins: readonly CniPluginConfig[];
  /** Where the list came from: a file path, `<inline>` or `<embedded>`. */
  readonly source: string;
  /** The list's JSON as read; stored base64 in the cache as libcni stores it. */
  readonly bytes: string;
}

const LIST_EXTENSIONS = ['.conflist'];
const SINGLE_EXTENSIONS = ['.conf', '.json'];

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

// libcni accepts a JSON boolean or the strings "true"/"false" in any case.
function readBool(raw: Record<string, unknown>, key: string, source: string): boolean {
  const value = raw[key];
  if (value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const s = value.toLowerCase();
    if (s === 'true') return true;
    if (s === 'false') return false;
  }
  throw new CniConfigError(source, key, `must be a boolean, got ${JSON.stringify(value)}`);
}

function pickVersion(raw: Record<string, unknown>, source: string): CniVersion {
  const given = raw['cniVersion'];
  if (given !== undefined && typeof given !== 'string') {
    throw new CniConfigError(source, 'cniVersion', 'must be a string');
  }
  const candidates: CniVersion[] = [];
  if (given !== undefined && given !== '') {
    if (!isCniVersion(given)) {
      throw new CniConfigError(
        source,
        'cniVersion',
        `unsupported version '${given}' (supported: ${CNI_VERSIONS.join(', ')})`,
      );
    }
    candidates.push(given);
  }
  const versions = raw['cniVersions'];
  if (versions !== undefined) {
    if (!Array.isArray(versions))
      throw new CniConfigError(source, 'cniVersions', 'must be an array');
    versions.forEach((x, i) => {
      if (typeof x !== 'string' || parseSemver(x) === undefined) {
        throw new CniConfigError(
          source,
          `cniVersions[${i}]`,
          `not a version: ${JSON.stringify(x)}`,
        );
      }
      // Like libcni: versions this runtime does not implement are skipped,
      // so a list may name future versions and still load here.
      if (isCniVersion(x)) candidates.push(x);
    });
  }
  if (candidates.length === 0) {
    throw new CniConfigError(
      source,
      'cniVersion',
      'missing (set cniVersion or a supported entry in cniVersions)',
    );
  }
  return candidates.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b));
}

function parsePlugin(raw: unknown, source: string, field: string): CniPluginConfig {
  if (!isObject(raw)) throw new CniConfigError(source, field, 'must be an object');
  const type = raw['type'];
  const problem = pluginTypeProblem(type);
  if (problem !== undefined) throw new CniConfigError(source, `${field}.type`, problem);
  const caps = raw['capabilities'];
  const capabilities: string[] = [];
  if (caps !== undefined) {
    if (!isObject(caps))
      throw new CniConfigError(source, `${field}.capabilities`, 'must be an object');
    for (const [name, on] of Object.entries(caps)) {
      if (typeof on !== 'boolean') {
        throw new CniConfigError(source, `${field}.capabilities.${name}`, 'must be a boolean');
      }
      if (on) capabilities.push(name);
    }
  }
  return { type: type as string, capabilities, config: raw };
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new CniConfigError(source, '(file)', 'not valid JSON', { cause });
  }
}

/**
 * Parses and validates a network configuration list. `input` is the JSON
 * text or an already-parsed object; `source` names it in errors. `extraPlugins`
 * are appended (plugins loaded from `<confDir>/<name>/`). Throws CniConfigError.
 */
export function parseNetworkList(
  input: string | Record<string, unknown>,
  source = '<inline>',
  extraPlugins: readonly unknown[] = [],
): CniNetworkList {
  const bytes = typeof input === 'string' ? input : JSON.stringify(input);
  const raw = typeof input === 'string' ? parseJson(input, source) : input;
  if (!isObject(raw)) throw new CniConfigError(source, '(file)', 'must be a JSON object');
  const nameIssue = nameProblem(raw['name']);
  if (nameIssue !== undefined) throw new CniConfigError(source, 'name', nameIssue);
  const cniVersion = pickVersion(raw, source);
  const disableCheck = readBool(raw, 'disableCheck', source);
  const disableGC = readBool(raw, 'disableGC', source);
  const loadOnlyInlinedPlugins = readBool(raw, 'loadOnlyInlinedPlugins', source);
  const rawPlugins = raw['plugins'];
  if (rawPlugins !== undefined && !Array.isArray(rawPlugins)) {
    throw new CniConfigError(source, 'plugins', 'must be an array');
  }
  const plugins = (rawPlugins ?? []).map((p, i) => parsePlugin(p, source, `plugins[${i}]`));
  if (!loadOnlyInlinedPlugins) {
    extraPlugins.forEach((p, i) => {
      plugins.push(
        parsePlugin(p, join(dirname(source), raw['name'] as string), `(plugin file ${i})`),
      );
    });
  }
  if (plugins.length === 0)
    throw new CniConfigError(source, 'plugins', 'must hold at least one plugin');
  return {
    name: raw['name'] as string,
    cniVersion,
    disableCheck,
    disableGC,
    loadOnlyInlinedPlugins,
    plugins,
    source,
    bytes,
  };
}

/**
 * Promotes a legacy single-plugin config (`.conf`/`.json`) to a list, as
 * libcni's ConfListFromConf does: the list takes the plugin's name and version.
 */
export function promoteSingleConfig(input: string, source: string): CniNetworkList {
  const raw = parseJson(input, source);
  if (!isObject(raw)) throw new CniConfigError(source, '(file)', 'must be a JSON object');
  const list: Record<string, unknown> = {
    name: raw['name'],
    cniVersion: raw['cniVersion'],
    plugins: [raw],
  };
  return parseNetworkList(JSON.stringify(list), source);
}

async function filesWith(dir: string, extensions: readonly string[]): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  return entries
    .filter((e) => !e.isDirectory() && extensions.includes(extname(e.name)))
    .map((e) => e.name)
    .sort()
    .map((n) => join(dir, n));
}

async function pluginFilesFor(dir: string, name: string): Promise<unknown[]> {
  const files = await filesWith(join(dir, name), ['.conf']);
  return Promise.all(files.map(async (f) => parseJson(await readFile(f, 'utf8'), f)));
}

/**
 * Loads one configuration file: a `.conflist` (plus `<dir>/<name>/*.conf`
 * unless loadOnlyInlinedPlugins), or a `.conf`/`.json` promoted to a list.
 */
export async function loadNetworkFile(path: string): Promise<CniNetworkList> {
  const text = await readFile(path, 'utf8');
  if (!LIST_EXTENSIONS.includes(extname(path))) return promoteSingleConfig(text, path);
  const raw = parseJson(text, path);
  const name = isObject(raw) ? raw['name'] : undefined;
  const inlinedOnly =
    isObject(raw) &&
    (raw['loadOnlyInlinedPlugins'] === true || raw['loadOnlyInlinedPlugins'] === 'true');
  const extra =
    typeof name === 'string' && nameProblem(name) === undefined && !inlinedOnly
      ? await pluginFilesFor(dirname(path), name)
      : [];
  return parseNetworkList(text, path, extra);
}

/** One configuration file that could not be loaded while scanning a directory. */
export interface InvalidNetworkFile {
  /** The file. */
  file: string;
  /** Why it was skipped. */
  error: unknown;
}

/**
 * Every network in `dir`, in libcni's order: `.conflist` files in lexical
 * order, then legacy `.conf`/`.json` files in lexical order. The first file
 * naming a network wins; files that fail to load are returned in `invalid`.
 */
export async function scanNetworks(
  dir: string,
): Promise<{ networks: CniNetworkList[]; invalid: InvalidNetworkFile[] }> {
  const files = [
    ...(await filesWith(dir, LIST_EXTENSIONS)),
    ...(await filesWith(dir, SINGLE_EXTENSIONS)),
  ];
  const networks: CniNetworkList[] = [];
  const invalid: InvalidNetworkFile[] = [];
  const seen = new Set<string>();
  for (const file of files) {
    try {
      const list = await loadNetworkFile(file);
      if (seen.has(list.name)) continue;
      seen.add(list.name);
      networks.push(list);
    } catch (error) {
      invalid.push({ file, error });
    }
  }
  return { networks, invalid };
}

/**
 * Finds a network by name in `dir` (libcni's LoadNetworkConf order). A file
 * whose JSON names the network but fails validation is reported, not skipped.
 */
export async function findNetwork(dir: string, name: string): Promise<CniNetworkList | undefined> {
  const files = [
    ...(await filesWith(dir, LIST_EXTENSIONS)),
    ...(await filesWith(dir, SINGLE_EXTENSIONS)),
  ];
  for (const file of files) {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch {
      continue;
    }
    if (isObject(raw) && raw['name'] === name) return loadNetworkFile(file);
  }
  return undefined;
}

/**
 * Loads a network by name (from `dir`) or by path (anything containing `/`).
 * Throws CniNetworkNotFoundError or CniConfigError.
 */
export async function loadNetworkFrom(dir: string, nameOrPath: string): Promise<CniNetworkList> {
  if (nameOrPath.includes('/')) {
    try {
      return await loadNetworkFile(nameOrPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CniNetworkNotFoundError(nameOrPath, dirname(nameOrPath), { cause: error });
      }
      throw error;
    }
  }
  const found = await findNetwork(dir, nameOrPath);
  if (found === undefined) throw new CniNetworkNotFoundError(basename(nameOrPath), dir);
  return found;
}
