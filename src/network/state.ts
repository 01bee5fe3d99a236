// One JSON file per container in the state directory, written atomically
// (temp file, fsync, rename, directory fsync) so a crash leaves either the
// old file or the new one, never half of one. Files are read as untrusted
// input: a file that does not validate is reported, never half-used.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import * as v from 'valibot';
import { parseNetworkList, parseResult } from '../cni/index.js';
import { InvalidArgumentError, PodnetError } from '../errors.js';
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
const Port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const Mode = v.union([
  v.picklist(['bridge', 'none', 'slirp4netns', 'pasta']),
  v.strictObject({ pid: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  v.strictObject({ path: v.string() }),
  v.strictObject({ container: v.string() }),
]);
const StateSchema = v.strictObject({
  version: v.literal(1),
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
      ifName: v.string(),
      config: v.string(),
      result: v.looseObject({}),
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

/** The state files of one directory. */
export class StateStore {
  /** The directory. */
  readonly dir: string;

  constructor(dir: string = defaultStateDir()) {
    this.dir = dir;
  }

  /** Path of a container's state file. */
  pathOf(id: string): string {
    return join(this.dir, `${checkContainerId(id)}.json`);
  }

  /** Writes (or replaces) a container's state atomically. */
  async write(state: ContainerState): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const target = this.pathOf(state.id);
    const tmp = join(this.dir, `.${state.id}.${randomBytes(6).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, target);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await this.#syncDir();
  }

  /** A container's state, or undefined when it has none. Throws StateFileError for a bad file. */
  async read(id: string): Promise<ContainerState | undefined> {
    const path = this.pathOf(id);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseState(path, text);
  }

  /** Deletes a container's state; a missing file is fine. */
  async remove(id: string): Promise<void> {
    try {
      await unlink(this.pathOf(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    await this.#syncDir();
  }

  /** Every state in the directory, and the files that did not validate. */
  async list(): Promise<{ states: ContainerState[]; bad: StateFileError[] }> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { states: [], bad: [] };
      throw err;
    }
    const states: ContainerState[] = [];
    const bad: StateFileError[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const path = join(this.dir, name);
      try {
        states.push(parseState(path, await readFile(path, 'utf8')));
      } catch (err) {
        if (err instanceof StateFileError) bad.push(err);
        else if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return { states, bad };
  }

  /** Leftover temp files of writes that crashed before their rename. */
  async tempFiles(): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    return names
      .filter((n) => n.startsWith('.') && n.endsWith('.tmp'))
      .map((n) => join(this.dir, n));
  }

  async #syncDir(): Promise<void> {
    // The rename or unlink is durable only once the directory is.
    const dh = await open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
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
  // Results are checked by the CNI result parser, in their list's version.
  const { networks, ...rest } = parsed.output;
  try {
    return {
      ...rest,
      networks: networks.map((n) => ({
        ...n,
        result: parseResult(n.result, parseNetworkList(n.config, path).cniVersion),
      })),
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
