// One JSON file per container in the state directory, written atomically
// (temp file, fsync, rename, directory fsync) so a crash leaves either the
// old file or the new one, never half of one; the first write creates it
// exclusively (link, which fails if the name exists). While a setup runs the
// file is its journal (see ContainerState). Files are read as untrusted
// input: a file that does not validate, or names a path podnet would not
// have put there, is reported, never half-used; and the directory itself
// must be the caller's (checkPrivateDir) before anything in it is read.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  linkSync,
  openSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as v from 'valibot';
import { parseNetworkList, parseResult } from '../cni/index.js';
import { InvalidArgumentError, PodnetError } from '../errors.js';
import { checkPrivateDir, checkRecordedPath, resolveDir } from '../fsafe.js';
import { userRuntimeDir } from '../netns/index.js';
import { processIdentity } from '../process.js';
import type { ContainerState, SetupOwner } from './types.js';

/** Container IDs are CNI container IDs: they name files, so they are checked strictly. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Checks a container ID (the CNI spec's pattern, at most 255 bytes). */
export function checkContainerId(id: unknown): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id) || id.length > 255) {
    throw new InvalidArgumentError(
      `container ID must match [A-Za-z0-9][A-Za-z0-9_.-]* (at most 255 characters), not ${JSON.stringify(id)}`,
    );
  }
  return id;
}

/**
 * Default state directory: $PODNET_STATE_DIR, else /run/podnet for root and
 * podnet/ in the runtime directory for other users ($XDG_RUNTIME_DIR, or
 * /run/user/UID: see userRuntimeDir); tmpfs, gone at reboot like the
 * namespaces it describes.
 */
export function defaultStateDir(): string {
  const env = process.env['PODNET_STATE_DIR'];
  if (env) return env;
  const runtime = userRuntimeDir();
  return runtime === undefined ? '/run/podnet' : join(runtime, 'podnet');
}

/** A state file that could not be read or did not validate. */
export class StateFileError extends PodnetError {
  /** The file. */
  readonly path: string;

  constructor(path: string, detail: string, options: { cause?: unknown } = {}) {
    super('ERR_PODNET_BAD_STATE', `state file '${path}' is unusable: ${detail}`, options);
    this.path = path;
  }
}

const Protocol = v.picklist(['tcp', 'udp']);
const IfName = v.pipe(v.string(), v.regex(/^eth\d{1,4}$/));
// The only host link a state may name: one the native driver made.
const HostIfName = v.pipe(v.string(), v.regex(/^veth[0-9a-f]{8}$/));
const Port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const Mode = v.union([
  v.picklist(['bridge', 'none', 'slirp4netns', 'pasta']),
  v.strictObject({ pid: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  v.strictObject({ path: v.string() }),
  v.strictObject({ container: v.string() }),
]);
const RuntimeConf = v.strictObject({
  netns: v.string(),
  args: v.array(v.tuple([v.string(), v.string()])),
  capabilityArgs: v.record(v.string(), v.unknown()),
});
const StateSchema = v.strictObject({
  version: v.literal(2),
  phase: v.picklist(['setup', 'ready']),
  owner: v.optional(
    v.strictObject({ pid: v.pipe(v.number(), v.integer()), startTime: v.string() }),
  ),
  id: v.pipe(v.string(), v.regex(ID_PATTERN)),
  name: v.string(),
  pod: v.optional(v.string()),
  mode: Mode,
  netnsPath: v.string(),
  ownsNetns: v.boolean(),
  networksRequested: v.boolean(),
  networks: v.array(
    v.strictObject({
      name: v.string(),
      ifName: IfName,
      config: v.string(),
      runtime: RuntimeConf,
      result: v.looseObject({}),
      driver: v.optional(v.literal('native')),
      hostIfName: v.optional(HostIfName),
    }),
  ),
  adding: v.optional(
    v.strictObject({
      name: v.string(),
      ifName: IfName,
      config: v.string(),
      runtime: RuntimeConf,
      reached: v.pipe(v.number(), v.integer(), v.minValue(-1)),
      prevResult: v.optional(v.looseObject({})),
      plugin: v.optional(
        v.strictObject({
          pid: v.pipe(v.number(), v.integer(), v.minValue(2)),
          startTime: v.string(),
        }),
      ),
      driver: v.optional(v.literal('native')),
      hostIfName: v.optional(HostIfName),
    }),
  ),
  portMappings: v.array(
    v.strictObject({
      hostIP: v.optional(v.string()),
      hostPort: Port,
      containerPort: Port,
      protocol: v.optional(Protocol),
      range: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
    }),
  ),
  exposedPorts: v.array(v.strictObject({ port: Port, protocol: v.optional(Protocol) })),
  staticIP: v.optional(v.string()),
  staticMAC: v.optional(v.string()),
  modeOptions: v.optional(v.array(v.string())),
  helpers: v.array(
    v.strictObject({
      kind: v.picklist(['keeper', 'slirp4netns', 'pasta', 'forwarder', 'userns']),
      pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
      startTime: v.string(),
      dir: v.optional(v.string()),
    }),
  ),
  created: v.string(),
});

/** Names podnet gives the namespaces it makes (NetworkNamespace.create's default). */
const NETNS_NAME = /^cni-[0-9a-f-]{36}$/;
/** Names of rootless engines' private directories (mkdtemp). */
const ENGINE_DIR_NAME = /^podnet-(slirp4netns|pasta)-[A-Za-z0-9]{6}$/;

/** The state files of one directory. */
export class StateStore {
  /** The directory, resolved once (see resolveDir). */
  readonly dir: string;

  constructor(dir: string = defaultStateDir()) {
    this.dir = resolveDir(dir);
  }

  /** Path of a container's state file. */
  pathOf(id: string): string {
    return join(this.dir, `${checkContainerId(id)}.json`);
  }

  /** Path of a container's lock file (see lock.ts). */
  lockPathOf(id: string): string {
    return join(this.dir, `${checkContainerId(id)}.lock`);
  }

  /**
   * Makes the directory (0700) if missing, then checks it is the caller's
   * alone: UnsafePathError otherwise, before anything in it is read.
   */
  async prepare(): Promise<void> {
    checkPrivateDir(this.dir);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    checkPrivateDir(this.dir);
  }

  /** Checks the directory without making it (for readers). */
  check(): void {
    checkPrivateDir(this.dir);
  }

  /**
   * Creates a container's state in the prepared directory (see prepare:
   * setup prepares it before taking the container's lock, which lives
   * there); ContainerExistsError when it has one. The content is complete
   * before the name appears (temp file, then link).
   */
  async create(state: ContainerState): Promise<void> {
    const tmp = this.#writeTemp(state);
    try {
      linkSync(tmp, this.pathOf(state.id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST')
        throw new ContainerExistsError(state.id, this.dir);
      throw err;
    } finally {
      unlinkQuietly(tmp);
    }
    this.#syncDir();
  }

  /**
   * Replaces a container's state atomically (its directory exists: the
   * state was created). Synchronous system calls, as the CNI cache's: a
   * journal entry is written before each plugin gets its config, so it sits
   * on every setup's critical path, and on tmpfs (/run) the calls take
   * microseconds where the thread-pool round trips of async ones cost more.
   */
  async write(state: ContainerState): Promise<void> {
    const tmp = this.#writeTemp(state);
    try {
      renameSync(tmp, this.pathOf(state.id));
    } catch (err) {
      unlinkQuietly(tmp);
      throw err;
    }
    this.#syncDir();
  }

  /** A container's state, or undefined when it has none. Throws StateFileError for a bad file. */
  async read(id: string): Promise<ContainerState | undefined> {
    this.check();
    return this.#read(id);
  }

  async #read(id: string): Promise<ContainerState | undefined> {
    const path = this.pathOf(id);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const state = this.#parse(path, text);
    if (state.id !== id) throw new StateFileError(path, `it is the state of '${state.id}'`);
    return state;
  }

  /** Deletes a container's state; a missing file is fine. */
  async remove(id: string): Promise<void> {
    try {
      unlinkSync(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    this.#syncDir();
  }

  /** The IDs that have a state file (whatever its content). */
  async ids(): Promise<string[]> {
    this.check();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .map((n) => n.slice(0, -'.json'.length))
      .filter((id) => ID_PATTERN.test(id) && id.length <= 255)
      .sort();
  }

  /** Every state in the directory, and the files that did not validate. */
  async list(): Promise<{ states: ContainerState[]; bad: StateFileError[] }> {
    const states: ContainerState[] = [];
    const bad: StateFileError[] = [];
    // ids() checked the directory once for all of them.
    for (const id of await this.ids()) {
      try {
        const state = await this.#read(id);
        if (state) states.push(state);
      } catch (err) {
        if (err instanceof StateFileError) bad.push(err);
        else throw err;
      }
    }
    return { states, bad };
  }

  /** The IDs that have a lock file (held now, or left by a holder that died). */
  async lockedIds(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.endsWith('.lock'))
      .map((n) => n.slice(0, -'.lock'.length))
      .filter((id) => ID_PATTERN.test(id) && id.length <= 255);
  }

  /** Leftover temp files of writes that crashed before their rename. */
  async tempFiles(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((n) => /^\.[A-Za-z0-9][A-Za-z0-9_.-]*\.[0-9a-f]{12}\.tmp$/.test(n))
      .map((n) => join(this.dir, n));
  }

  #writeTemp(state: ContainerState): string {
    const tmp = join(this.dir, `.${state.id}.${randomBytes(6).toString('hex')}.tmp`);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(state, null, 2)}\n`);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkQuietly(tmp);
      throw err;
    }
    closeSync(fd);
    return tmp;
  }

  #parse(path: string, text: string): ContainerState {
    const state = parseState(path, text);
    checkPlaces(path, state);
    return state;
  }

  #syncDir(): void {
    // The rename or unlink is durable only once the directory is.
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: nothing more to undo.
  }
}

/** A container ID already has state: a second setup changes nothing. */
export class ContainerExistsError extends PodnetError {
  constructor(id: string, dir: string) {
    super(
      'ERR_PODNET_CONTAINER_EXISTS',
      `container '${id}' already has a network (state in '${dir}')`,
    );
  }
}

// The paths a state names are ones teardown will unmount, unlink or remove
// as the caller: each must be one podnet itself could have made.
function checkPlaces(file: string, state: ContainerState): void {
  try {
    const userns = state.helpers.find((h) => h.kind === 'userns');
    if (userns !== undefined) {
      if (state.netnsPath !== '' && state.netnsPath !== `/proc/${userns.pid}/ns/net`)
        throw new StateFileError(file, `netnsPath must be its helper's /proc/${userns.pid}/ns/net`);
    } else if (state.ownsNetns && state.netnsPath !== '') {
      checkRecordedPath(state.netnsPath, NETNS_NAME, 'a namespace podnet made');
    }
    for (const h of state.helpers) {
      if (h.dir !== undefined) checkRecordedPath(h.dir, ENGINE_DIR_NAME, "an engine's directory");
    }
  } catch (err) {
    if (err instanceof StateFileError) throw err;
    throw new StateFileError(file, (err as Error).message, { cause: err });
  }
}

function parseState(path: string, text: string): ContainerState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new StateFileError(path, 'not JSON', { cause: err });
  }
  const parsed = v.safeParse(StateSchema, raw);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join('.') ?? '(file)';
    throw new StateFileError(path, `${where}: ${issue.message}`);
  }
  if (parsed.output.networks.some((n) => n.runtime.netns !== parsed.output.netnsPath))
    throw new StateFileError(path, "a network's netns is not the container's");
  // Results are checked by the CNI result parser, in their list's version.
  const { networks, adding, ...rest } = parsed.output;
  try {
    const version = (config: string) => parseNetworkList(config, path).cniVersion;
    return {
      ...rest,
      networks: networks.map((n) => ({ ...n, result: parseResult(n.result, version(n.config)) })),
      ...(adding === undefined
        ? {}
        : {
            adding: {
              ...adding,
              ...(adding.prevResult === undefined
                ? {}
                : { prevResult: parseResult(adding.prevResult, version(adding.config)) }),
            },
          }),
    } as ContainerState;
  } catch (err) {
    throw new StateFileError(path, `a network's config or result: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Identifies the current process for the state's `owner` field. */
export function currentOwner(): SetupOwner {
  return processIdentity(process.pid);
}
