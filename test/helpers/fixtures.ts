// Where the test fixtures are: one home for the path, so a test file names a
// fixture the same way wherever it sits in the tree.
import { fileURLToPath } from 'node:url';

/** Absolute path of PATH under test/fixtures/ (e.g. `cni/fake-hang`). */
export function fixture(path: string): string {
  return fileURLToPath(new URL(`../fixtures/${path}`, import.meta.url));
}
