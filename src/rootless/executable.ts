// Finding the programs the rootless engines run (slirp4netns, pasta,
// unshare, nsenter), as execvp would, for every engine and for the plan's
// choice of a default mode.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Finds an executable `name` on PATH (as execvp would), or checks the given
 * path; undefined when there is none.
 */
export async function findExecutable(
  name: string,
  pathEnv: string = process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
): Promise<string | undefined> {
  if (name.includes('/')) return (await isExecutableFile(name)) ? resolve(name) : undefined;
  for (const dir of pathEnv.split(delimiter)) {
    // An empty or relative PATH entry would make the result depend on the cwd.
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}
