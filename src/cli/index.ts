import { cac } from 'cac';
import { InvalidArgumentError, isPodnetError } from '../errors.js';
import { defaultNetnsDir, NetworkNamespace, namespacePath } from '../netns/index.js';
import { formatDemo, runDemo } from './demo.js';
import { table } from './output.js';

interface GlobalFlags {
  json?: boolean;
  dir?: string;
}

function print(flags: GlobalFlags, json: unknown, text: () => string): void {
  process.stdout.write(`${flags.json ? JSON.stringify(json, null, 2) : text()}\n`);
}

/**
 * Runs the podnet command line with ARGV (without node and script) and
 * resolves to the exit code. Errors go to stderr as one line; the stack
 * only with NODE_DEBUG=podnet.
 */
export async function main(argv: string[]): Promise<number> {
  const cli = cac('podnet');
  cli.option('--json', 'Print machine-readable JSON');

  cli
    .command('netns <action> [name]', 'Network namespaces: add [NAME] | ls | rm NAME')
    .option('--dir <dir>', 'Namespace directory (default /run/netns)')
    .action(async (action: string, name: string | undefined, flags: GlobalFlags) => {
      const dir = flags.dir ?? defaultNetnsDir();
      switch (action) {
        case 'add': {
          const ns = await NetworkNamespace.create({
            dir,
            ...(name === undefined ? {} : { name }),
          });
          ns.close();
          return print(flags, { name: ns.name, path: ns.path }, () => ns.path);
        }
        case 'ls': {
          const list = await NetworkNamespace.list(dir);
          return print(flags, list, () =>
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
          return print(flags, { removed: ns.path }, () => `removed ${ns.path}`);
        }
        default:
          throw new InvalidArgumentError(`unknown netns action '${action}': add, ls or rm`);
      }
    });

  cli
    .command('demo', 'Two namespaces, a veth, traffic through them and their link statistics')
    .action(async (flags: GlobalFlags) => {
      const report = await runDemo();
      print(flags, report, () => formatDemo(report));
    });

  cli.help();
  cli.version('0.1.0');

  try {
    cli.parse(['node', 'podnet', ...argv], { run: false });
    if (!cli.matchedCommand) {
      if (argv.length > 0 && !cli.options['help'] && !cli.options['version']) {
        throw new Error(`unknown command '${argv.join(' ')}' (see podnet --help)`);
      }
      if (!cli.options['help'] && !cli.options['version']) cli.outputHelp();
      return argv.length > 0 || cli.options['help'] || cli.options['version'] ? 0 : 1;
    }
    await cli.runMatchedCommand();
    return 0;
  } catch (err) {
    const e = err as Error;
    const code = isPodnetError(err) && err.code.startsWith('ERR_') ? ` [${err.code}]` : '';
    process.stderr.write(`podnet: ${e.message}${code}\n`);
    if (process.env['NODE_DEBUG']?.split(',').includes('podnet'))
      process.stderr.write(`${e.stack}\n`);
    return 1;
  }
}
