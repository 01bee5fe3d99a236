import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as v from 'valibot';
import { CniCacheError } from './errors.js';
import { ifNameProblem, nameProblem } from './validate.js';

/** The `kind` libcni writes into its result cache files. */
export const CACHE_KIND = 'cniCacheV1';

/** An attachment recorded in the cache: what GC and crash recovery need. */
export interface CachedAttachment {
  /** The network list's name. */
  network: string;
  /** The container ID it was added with. */
  containerId: string;
  /** The interface name inside the namespace. */
  ifName: string;
  /** The namespace path it was added with ('' when unknown). */
  netns: string;
  /** CNI_ARGS pairs it was added with. */
  args: [string, string][];
  /** Capability arguments it was added with. */
  capabilityArgs: Record<string, unknown>;
  /** The cache file. */
  path: string;
  /**
   * 'native' when podnet's own bridge driver made the attachment rather
   * than the plugins (libcni ignores the field; gc undoes it natively).
   */
  driver?: 'native';
}

/** A cache file's whole content. */
export interface CacheEntry extends CachedAttachment {
  /** The network list's JSON as it was at ADD time. */
  config: string;
  /** The raw result JSON object (parse it with parseResult). */
  result: unknown;
}

const CacheFile = v.object({
  kind: v.literal(CACHE_KIND),
  containerId: v.string(),
  config: v.optional(v.string(), ''),
  ifName: v.pipe(v.string(), v.minLength(1)),
  networkName: v.pipe(v.string(), v.minLength(1)),
  netns: v.optional(v.string(), ''),
  cniArgs: v.optional(v.nullable(v.array(v.tuple([v.string(), v.string()]))), null),
  capabilityArgs: v.optional(v.nullable(v.record(v.string(), v.unknown())), null),
  result: v.optional(v.unknown()),
  podnetDriver: v.optional(v.literal('native')),
});

/**
 * libcni's on-disk result cache: one JSON file per attachment at
 * `<dir>/results/<network>-<containerId>-<ifName>`, so podnet and any
 * libcni-based tool (podman, cnitool, containerd) read each other's entries.
 *
 * Reading, writing and removing one entry use synchronous calls on purpose:
 * they sit on every ADD/DEL's critical path, each is a few microseconds on a
 * small local file (no fsync), and the thread-pool round trips of the async
 * calls cost several times more than the system calls themselves.
 */
export class ResultCache {
  /** The cache root (libcni's cacheDir, default /var/lib/cni). */
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The results directory. */
  get resultsDir(): string {
    return join(this.dir, 'results');
  }

  /** The file for one attachment. */
  pathFor(network: string, containerId: string, ifName: string): string {
    return join(this.resultsDir, `${network}-${containerId}-${ifName}`);
  }

  /**
   * Writes an entry atomically (temp file then rename, mode 0600 in a 0700
   * directory): a reader sees the old file or the new one, never half of
   * one. No fsync, as libcni: the cache is advisory and DEL copes without it.
   */
  async write(entry: Omit<CacheEntry, 'path'>): Promise<string> {
    const file = this.pathFor(entry.network, entry.containerId, entry.ifName);
    const data: Record<string, unknown> = {
      kind: CACHE_KIND,
      containerId: entry.containerId,
      config: Buffer.from(entry.config).toString('base64'),
      ifName: entry.ifName,
      networkName: entry.network,
    };
    // libcni's fields are `omitempty`.
    if (entry.netns !== '') data['netns'] = entry.netns;
    if (entry.args.length > 0) data['cniArgs'] = entry.args;
    if (Object.keys(entry.capabilityArgs).length > 0) data['capabilityArgs'] = entry.capabilityArgs;
    if (entry.result !== undefined) data['result'] = entry.result;
    if (entry.driver !== undefined) data['podnetDriver'] = entry.driver;
    const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    const text = JSON.stringify(data);
    try {
      writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      mkdirSync(this.resultsDir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' });
    }
    try {
      renameSync(tmp, file);
    } catch (error) {
      try {
        unlinkSync(tmp);
      } catch {
        // Nothing more to undo.
      }
      throw error;
    }
    return file;
  }

  /** Parses one cache file's text; throws CniCacheError when unusable. */
  parse(path: string, text: string): CacheEntry {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (cause) {
      throw new CniCacheError(path, 'not valid JSON', { cause });
    }
    const parsed = v.safeParse(CacheFile, raw);
    if (!parsed.success) throw new CniCacheError(path, v.summarize(parsed.issues));
    const c = parsed.output;
    // The names become paths and plugin arguments: an entry is used only when
    // they are valid CNI names and are the ones its own file name was made of.
    const problem =
      nameProblem(c.networkName) ?? nameProblem(c.containerId) ?? ifNameProblem(c.ifName);
    if (problem !== undefined) throw new CniCacheError(path, problem);
    if (this.pathFor(c.networkName, c.containerId, c.ifName) !== path)
      throw new CniCacheError(path, 'its network, containerId and ifName do not name this file');
    return {
      network: c.networkName,
      containerId: c.containerId,
      ifName: c.ifName,
      netns: c.netns,
      args: (c.cniArgs ?? []).map(([k, x]) => [k, x]),
      capabilityArgs: c.capabilityArgs ?? {},
      config: Buffer.from(c.config, 'base64').toString('utf8'),
      result: c.result,
      path,
      ...(c.podnetDriver === undefined ? {} : { driver: c.podnetDriver }),
    };
  }

  /** Reads one attachment's entry; undefined when there is none. Throws CniCacheError when corrupt. */
  async read(
    network: string,
    containerId: string,
    ifName: string,
  ): Promise<CacheEntry | undefined> {
    const path = this.pathFor(network, containerId, ifName);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    return this.parse(path, text);
  }

  /**
   * Removes one attachment's entry (no error when there is none), and any
   * temp file a crashed write of it left.
   */
  async remove(network: string, containerId: string, ifName: string): Promise<void> {
    const file = this.pathFor(network, containerId, ifName);
    try {
      unlinkSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    // A write killed between its temp file and the rename left the temp
    // file: it belongs to this attachment, whose DEL is done.
    const temp = `${basename(file)}.`;
    for (const name of await readdir(this.resultsDir).catch(() => [] as string[])) {
      if (!name.startsWith(temp) || !/^[0-9a-f]{12}\.tmp$/.test(name.slice(temp.length))) continue;
      try {
        unlinkSync(join(this.resultsDir, name));
      } catch {
        // Gone already.
      }
    }
  }

  /**
   * Every readable entry, optionally only one network's or one container's.
   * Files that are not cache entries (or are corrupt) are skipped, as libcni's
   * GetCachedAttachments skips them.
   */
  async list(filter: { network?: string; containerId?: string } = {}): Promise<CachedAttachment[]> {
    let names: string[];
    try {
      names = await readdir(this.resultsDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const out: CachedAttachment[] = [];
    for (const name of names.sort()) {
      if (name.endsWith('.tmp')) continue;
      if (filter.network !== undefined && !name.startsWith(`${filter.network}-`)) continue;
      if (filter.containerId !== undefined && !name.includes(`-${filter.containerId}-`)) continue;
      const path = join(this.resultsDir, name);
      let entry: CacheEntry;
      try {
        entry = this.parse(path, await readFile(path, 'utf8'));
      } catch {
        continue;
      }
      if (filter.network !== undefined && entry.network !== filter.network) continue;
      if (filter.containerId !== undefined && entry.containerId !== filter.containerId) continue;
      const { config: _config, result: _result, ...attachment } = entry;
      out.push(attachment);
    }
    return out;
  }
}
