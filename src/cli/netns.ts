// `podnet netns`: named network namespaces, like `ip netns`.
import type { CAC } from 'cac';
import { InvalidArgumentError } from '../errors.js';
import { defaultNetnsDir, NetworkNamespace, namespacePath } from '../netns/index.js';
import { print, table } from './output.js';

interface NetnsFlags {
  json?: boolean;
  dir?: string;
}

/** Registers `netns add [NAME] | ls | rm NAME` on CLI. */
export function registerNetnsCommand(cli: CAC): void {
  cli
    .command('netns <action> [name]', 'Network namespaces: add [NAME] | ls | rm NAME')
    .option('--dir <dir>', 'Namespace directory (default /run/netns)')
    .action(async (action: string, name: string | undefined, flags: NetnsFlags) => {
      const dir = flags.dir ?? defaultNetnsDir();
      const json = flags.json === true;
      switch (action) {
        case 'add': {
          const ns = await NetworkNamespace.create({
            dir,
            ...(name === undefined ? {} : { name }),
          });
          ns.close();
          return print(json, { name: ns.name, path: ns.path }, () => ns.path);
        }
        case 'ls': {
          const list = await NetworkNamespace.list(dir);
          return print(json, list, () =>
            table(
              ['NAME', 'PATH'],
              list.map((e) => [e.name, e.path]),
            ),
          );
        }
        case 'rm': {
          if (name === undefined) throw new InvalidArgumentError('netns rm needs a NAME');
          const ns = await NetworkNamespace.open(namespacePath(name, dir));
          await ns.remove();
          return print(json, { removed: ns.path }, () => `removed ${ns.path}`);
        }
        default:
          throw new InvalidArgumentError(`unknown netns action '${action}': add, ls or rm`);
      }
    });
}
