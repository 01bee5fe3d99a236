// `podnet netns`: named network namespaces, like `ip netns`.
import { resolve } from 'node:path';
import { defaultNetnsDir, NetworkNamespace, namespacePath } from '../netns/index.js';
import { UsageError } from './errors.js';
import { commandAfterDashes, execIn } from './exec.js';
import { type FlagValues, str } from './flags.js';
import { print, table } from './output.js';

/**
 * `podnet netns add [NAME] | ls | rm NAME | exec NAME -- CMD [ARG...]`, in
 * `--dir` (alias `--netns-dir`); exec resolves to the command's exit status.
 */
export async function netns(
  [action = '', name]: string[],
  flags: FlagValues,
): Promise<number | undefined> {
  const dirFlag = str(flags, 'dir');
  const netnsDirFlag = str(flags, 'netns-dir');
  if (dirFlag !== undefined && netnsDirFlag !== undefined && dirFlag !== netnsDirFlag) {
    throw new UsageError('--dir and --netns-dir name different directories');
  }
  // Absolute, so every path printed is (add resolves it, list would not).
  const dir = resolve(dirFlag ?? netnsDirFlag ?? defaultNetnsDir());
  const json = flags['json'] === true;
  if (flags['--'] !== undefined && action !== 'exec')
    throw new UsageError(`netns ${action} takes no command after --`);
  switch (action) {
    case 'add': {
      const ns = await NetworkNamespace.create({ dir, ...(name === undefined ? {} : { name }) });
      ns.close();
      print(json, { name: ns.name, path: ns.path }, () => ns.path);
      return undefined;
    }
    case 'ls': {
      if (name !== undefined) throw new UsageError('netns ls takes no NAME');
      const list = await NetworkNamespace.list(dir);
      print(json, list, () =>
        table(
          ['NAME', 'PATH'],
          list.map((e) => [e.name, e.path]),
        ),
      );
      return undefined;
    }
    case 'rm': {
      if (name === undefined) throw new UsageError('netns rm needs a NAME');
      const ns = await NetworkNamespace.open(namespacePath(name, dir));
      await ns.remove();
      print(json, { removed: ns.path }, () => `removed ${ns.path}`);
      return undefined;
    }
    case 'exec': {
      if (name === undefined) throw new UsageError('netns exec needs a NAME');
      const [command, args] = commandAfterDashes(flags, `podnet netns exec ${name}`);
      const ns = await NetworkNamespace.open(namespacePath(name, dir));
      try {
        return await execIn(ns, command, args);
      } finally {
        ns.close();
      }
    }
    default:
      throw new UsageError(`unknown netns action '${action}': add, ls, rm or exec`);
  }
}
