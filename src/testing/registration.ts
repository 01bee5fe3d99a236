// What every topology does around its build: unique names for its
// namespaces, a record for the reaper written before anything is made,
// the watcher held while it lives, and one removal for failure and end.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { AggregatePodnetError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';
import { namespacePath } from '../netns/namespace.js';
import { processIdentity } from '../process.js';
import {
  type ClusterRecord,
  deleteRecord,
  holdWatcher,
  recordFilesDir,
  sweepTopologies,
  writeRecord,
} from './reaper.js';

/** A new unique test namespace name, `podnet-test-<12 hex>` (what the reaper removes). */
export const testName = (): string => `podnet-test-${randomBytes(6).toString('hex')}`;

/**
 * A throwaway namespace with `lo` up, uniquely named `podnet-test-<hex>`.
 * `await using ns = await tempNamespace()` removes it at the end of scope.
 */
export async function tempNamespace(
  opts: { dir?: string; name?: string } = {},
): Promise<NetworkNamespace> {
  const ns = await NetworkNamespace.create({ ...opts, name: opts.name ?? testName() });
  try {
    await ns.setLinkUp('lo');
    return ns;
  } catch (err) {
    await ns.remove();
    throw err;
  }
}

/** What a registration records beside its namespaces (clusters). */
export interface RegistrationExtra {
  /** Keep the topology when this process ends (`podnet cluster up`); no watcher is held. */
  persistent?: boolean;
  /** What it is, when it is a cluster. */
  cluster?: ClusterRecord;
}

/** A topology's registration: sweep the dead, register, hold the watcher; on failure or removal undo all of it. */
export class Registration {
  readonly made: NetworkNamespace[] = [];
  readonly names: string[];
  readonly #where: { dir?: string };
  #release: (() => Promise<void>) | undefined;
  #recordDir = '';
  #id = '';
  #extra: RegistrationExtra = {};
  // names[0, #claimed) are taken by a namespace made or being made; taken
  // synchronously, so namespaces made at the same time get different names.
  #claimed = 0;
  // Record writes, one after another, each of the state at its turn: the
  // last to land is always the newest (two pods added at once both stay listed).
  #writing: Promise<void> = Promise.resolve();
  record = '';

  constructor(count: number, where: { dir?: string }) {
    this.names = Array.from({ length: count }, testName);
    this.#where = where;
  }

  /** The directory of the topology's own files (removed with it); made by the caller. */
  get filesDir(): string {
    return recordFilesDir(this.record);
  }

  async start(recordDir: string, extra: RegistrationExtra = {}): Promise<void> {
    await sweepTopologies({ dir: recordDir });
    this.#recordDir = recordDir;
    this.#id = randomBytes(8).toString('hex');
    this.#extra = extra;
    await this.#write();
    if (!extra.persistent) this.#release = holdWatcher(recordDir);
  }

  /**
   * Registers `count` more namespaces (the record is rewritten before any of
   * them is made) and, when given, the cluster's description as it stands.
   */
  async grow(count: number, cluster?: ClusterRecord): Promise<void> {
    for (let i = 0; i < count; i++) this.names.push(testName());
    if (cluster) this.#extra = { ...this.#extra, cluster };
    await this.#write();
  }

  #write(): Promise<void> {
    const next = this.#writing.then(async () => {
      this.record = await writeRecord(this.#recordDir, this.#id, {
        version: 1,
        owner: processIdentity(process.pid),
        namespaces: this.names.map((name) => namespacePath(name, this.#where.dir)),
        ...this.#extra,
      });
    });
    // A failed write fails its caller; the next one still runs.
    this.#writing = next.catch(() => undefined);
    return next;
  }

  /** The path the next namespace will have. */
  nextPath(): string {
    return namespacePath(this.names[this.#claimed]!, this.#where.dir);
  }

  /** Makes the next registered namespace (`grow` first when none is left). */
  async namespace(): Promise<NetworkNamespace> {
    const name = this.names[this.#claimed++]!;
    const ns = await tempNamespace({ ...this.#where, name });
    this.made.push(ns);
    return ns;
  }

  /** Removes one namespace made here (a pod's) and no longer lists it. */
  async drop(ns: NetworkNamespace, cluster?: ClusterRecord): Promise<void> {
    await ns.remove();
    const i = this.made.indexOf(ns);
    if (i >= 0) this.made.splice(i, 1);
    const n = this.names.indexOf(ns.name);
    if (n >= 0 && n < this.#claimed) {
      this.names.splice(n, 1);
      this.#claimed--;
    }
    if (cluster) this.#extra = { ...this.#extra, cluster };
    await this.#write();
  }

  readonly remove = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const ns of this.made.splice(0).reverse())
      await ns.remove().catch((e: unknown) => errors.push(e));
    if (errors.length)
      throw new AggregatePodnetError('ERR_PODNET_TEARDOWN', 'removing a test topology', errors);
    if (this.record) {
      await this.#writing;
      await rm(this.filesDir, { recursive: true, force: true });
      await deleteRecord(this.record);
    }
    await this.#release?.();
    this.#release = undefined;
  };
}
