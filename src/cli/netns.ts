// `podnet netns`: named network namespaces, like `ip netns`.
import { resolve } from 'node:path';
import { defaultNetnsDir, NetworkNamespace, namespacePath } from '../netns/index.js';
import { UsageError } from './errors.js';
import { type FlagValues, str } from './flags.js';
import { print, table } from './output.js';

/** `podnet netns add [NAME] | ls | rm NAME`, in `--dir` (alias `--netns-dir`). */
export async function netns([action = '', name]: string[], flags: FlagValues): Promise<void> {
  const dirFlag = str(flags, 'dir');
  const netnsDirFlag = str(flags, 'netns-dir');
  if (dirFlag !== undefined && netnsDirFlag !== undefined && dirFlag !== netnsDirFlag) {
    throw new UsageError('--dir and --netns-dir name different directories');
  }
  // Absolute, so every path printed is (add resolves it, list would not).
  const dir = resolve(dirFlag ?? netnsDirFlag ?? defaultNetnsDir());
  const json = flags['json'] === true;
  switch (action) {
    case 'add': {
      const ns = await NetworkNamespace.create({ dir, ...(name === undefined ? {} : { name }) });
      ns.close();
      return print(json, { name: ns.name, path: ns.path }, () => ns.path);
    }
    case 'ls': {
      if (name !== undefined) throw new UsageError('netns ls takes no NAME');
      const list = await NetworkNamespace.list(dir);
      return print(json, list, () =>
        table(
          ['NAME', 'PATH'],
          list.map((e) => [e.name, e.path]),
        ),
      );
    }
    case 'rm': {
      if (name === undefined) throw new UsageError('netns rm needs a NAME');
      const ns = await NetworkNamespace.open(namespacePath(name, dir));
      await ns.remove();
      return print(json, { removed: ns.path }, () => `removed ${ns.path}`);
    }
    default:
      throw new UsageError(`unknown netns action '${action}': add, ls or rm`);
  }
}
