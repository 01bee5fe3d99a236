// What every topology does around its build: unique names for its
// namespaces, a record for the reaper written before anything is made,
// the watcher held while it lives, and one removal for failure and end.
import { randomBytes } from 'node:crypto';
import { AggregatePodnetError } from '../errors.js';
import { NetworkNamespace } from '../netns/index.js';
import { namespacePath } from '../netns/namespace.js';
import { processIdentity } from '../process.js';
import { deleteRecord, holdWatcher, sweepTopologies, writeRecord } from './reaper.js';

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

/** A topology's registration: sweep the dead, register, hold the watcher; on failure or removal undo all of it. */
export class Registration {
  readonly made: NetworkNamespace[] = [];
  readonly names: string[];
  readonly #where: { dir?: string };
  #release: (() => Promise<void>) | undefined;
  record = '';

  constructor(count: number, where: { dir?: string }) {
    this.names = Array.from({ length: count }, testName);
    this.#where = where;
  }

  async start(recordDir: string): Promise<void> {
    await sweepTopologies({ dir: recordDir });
    this.record = await writeRecord(recordDir, randomBytes(8).toString('hex'), {
      version: 1,
      owner: processIdentity(process.pid),
      namespaces: this.names.map((name) => namespacePath(name, this.#where.dir)),
    });
    this.#release = holdWatcher(recordDir);
  }

  async namespace(): Promise<NetworkNamespace> {
    const ns = await tempNamespace({ ...this.#where, name: this.names[this.made.length]! });
    this.made.push(ns);
    return ns;
  }

  readonly remove = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const ns of this.made.splice(0).reverse())
      await ns.remove().catch((e: unknown) => errors.push(e));
    if (errors.length)
      throw new AggregatePodnetError('ERR_PODNET_TEARDOWN', 'removing a test topology', errors);
    if (this.record) await deleteRecord(this.record);
    await this.#release?.();
    this.#release = undefined;
  };
}
