// Directories podnet trusts with its own records (state, namespace mounts,
// the CNI cache), and paths read back from those records. A record names
// paths podnet will unmount, unlink or hand to plugins as root; if another
// user can write the directory, the record is theirs, not ours. So a
// directory must be owned by the caller (or root) and writable by nobody
// else before anything in it is read, and every path read from a record must
// lie where podnet puts such things.
import { existsSync, lstatSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { PodnetError } from './errors.js';

/** A directory podnet would trust with its records is unsafe, or a recorded path is out of place. */
export class UnsafePathError extends PodnetError {
  /** The directory or path. */
  readonly path: string;

  constructor(path: string, detail: string) {
    super('ERR_PODNET_UNSAFE_PATH', `refusing '${path}': ${detail}`);
    this.path = path;
  }
}

/**
 * A directory as podnet will use it from now on: absolute, normalised (no
 * trailing slash, no `..`), and with symlinks in the part that exists
 * resolved. Resolved once, so every path made from it (and recorded in
 * state) is the path the kernel uses.
 */
export function resolveDir(dir: string): string {
  let existing = resolve(dir);
  const missing: string[] = [];
  while (!existsSync(existing) && dirname(existing) !== existing) {
    missing.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realpathSync(existing), ...missing);
}

/**
 * Throws UnsafePathError unless `dir` (when it exists) and every directory
 * above it are owned by root or the caller and not writable by group or
 * others, a sticky directory (/tmp) excepted above the last level. A missing
 * `dir` is fine: podnet creates it 0700.
 */
export function checkPrivateDir(dir: string): void {
  if (!isAbsolute(dir)) throw new UnsafePathError(dir, 'not an absolute path');
  const uid = process.geteuid?.() ?? 0;
  let at = dir;
  let leaf = true;
  for (;;) {
    let st: Stats | undefined;
    try {
      st = lstatSync(at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (st !== undefined) {
      if (st.isSymbolicLink()) throw new UnsafePathError(at, 'is a symbolic link');
      if (!st.isDirectory()) throw new UnsafePathError(at, 'is not a directory');
      if (st.uid !== uid && st.uid !== 0)
        throw new UnsafePathError(at, `is owned by uid ${st.uid}, not by ${uid} or root`);
      const sticky = (st.mode & 0o1000) !== 0;
      if ((st.mode & 0o022) !== 0 && (leaf || !sticky))
        throw new UnsafePathError(at, `is writable by group or others (mode ${mode(st.mode)})`);
      leaf = false;
    }
    const up = dirname(at);
    if (up === at) return;
    at = up;
  }
}

/**
 * Checks that `path`, read from a record, is absolute, normalised and named
 * the way podnet names such things (`name`): a recorded path may only be
 * one podnet itself could have made. Where it lies is checked when it is
 * used (its directory must then be a private one, see checkPrivateDir), so
 * a state stays usable with another `--netns-dir` or TMPDIR than it was
 * made with.
 */
export function checkRecordedPath(path: string, name: RegExp, what: string): string {
  if (!isAbsolute(path) || resolve(path) !== path || !name.test(basename(path)))
    throw new UnsafePathError(path, `${what} must be an absolute path named like ${name.source}`);
  return path;
}

/** Checks that `path` is a real directory (not a symlink) of the caller's, before removing it. */
export function checkOwnDir(path: string): void {
  const st = lstatSync(path);
  if (!st.isDirectory()) throw new UnsafePathError(path, 'is not a directory');
  const uid = process.geteuid?.() ?? 0;
  if (st.uid !== uid) throw new UnsafePathError(path, `is owned by uid ${st.uid}, not ${uid}`);
}

function mode(m: number): string {
  return (m & 0o7777).toString(8).padStart(4, '0');
}
