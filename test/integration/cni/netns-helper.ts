// Throwaway network namespaces for the CNI tests: the CNI runtime needs
// nothing of a namespace but its path, so this is all the tests ask for.
import { NetworkNamespace } from '../../../src/netns/index.js';
import { inNetns, tempNetnsDir } from '../../helpers/host.js';

/** A namespace mounted in its own temp dir, and how to get rid of both. */
export interface TestNetns {
  path: string;
  remove(): Promise<void>;
}

/** Creates a fresh network namespace in a temp dir of its own. */
export async function makeNetns(): Promise<TestNetns> {
  const tmp = tempNetnsDir();
  try {
    const ns = await NetworkNamespace.create({ dir: tmp.dir, name: 'ns' });
    return {
      path: ns.path,
      async remove() {
        await ns.remove();
        await tmp.cleanup();
      },
    };
  } catch (error) {
    await tmp.cleanup();
    throw error;
  }
}

/** Runs argv inside the namespace mounted at `path` (nsenter, no shell). */
export function execInNetns(path: string, argv: string[]): Promise<string> {
  return inNetns(path, argv);
}
