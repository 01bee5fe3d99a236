// Plugin lookup, as libcni's invoke.FindInPath: a plugin's `type` is a
// binary name (validated before it gets here), looked up in each plugin dir
// in order; the first executable one wins.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { CniNetworkList } from '../config.js';
import { CniConfigError } from '../errors.js';

/**
 * The path of plugin `type` in the first of `dirs` that holds it as an
 * executable; CniConfigError (naming `source` and `field`) when none does.
 */
export function findPlugin(
  dirs: readonly string[],
  type: string,
  source: string,
  field: string,
): string {
  for (const dir of dirs) {
    const path = join(dir, type);
    // access(2) on a local path takes microseconds; done synchronously it
    // spares a thread-pool round trip per plugin on every call.
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // Not in this dir; try the next.
    }
  }
  throw new CniConfigError(
    source,
    field,
    `plugin binary '${type}' not found in ${dirs.join(', ')}`,
  );
}

/**
 * The paths of every plugin of a list, in order. Every binary is found
 * before the first one runs, so a typo in the last plugin cannot leave the
 * first ones' work behind.
 */
export function findPlugins(list: CniNetworkList, dirs: readonly string[]): string[] {
  return list.plugins.map((p, i) => findPlugin(dirs, p.type, list.source, `plugins[${i}].type`));
}
