import { cac } from 'cac';
import { isPodnetError, PodnetError } from '../errors.js';
import { registerContainerCommands } from './container.js';
import { formatDemo, runDemo } from './demo.js';
import { registerNetnsCommand } from './netns.js';
import { registerNetworksCommand } from './networks.js';
import { print } from './output.js';
import { registerStatsCommand } from './stats.js';

/**
 * Runs the podnet command line with ARGV (without node and script) and
 * resolves to the exit code. Errors go to stderr as one line; the stack
 * only with NODE_DEBUG=podnet.
 */
export async function main(argv: string[]): Promise<number> {
  const cli = cac('podnet');
  cli.option('--json', 'Print machine-readable JSON');

  registerContainerCommands(cli);
  registerStatsCommand(cli);
  registerNetworksCommand(cli);
  registerNetnsCommand(cli);
  cli
    .command(
      'demo',
      'A container network on the embedded default network: HTTP through a published port, inspect, live stats, teardown',
    )
    .action(async (flags: { json?: boolean }) => {
      const say = flags.json ? undefined : (line: string) => process.stdout.write(`${line}\n`);
      const report = await runDemo(say ? { say } : {});
      print(flags.json === true, report, () => formatDemo(report));
      const left = Object.keys(report.leftovers).filter((k) => !report.leftovers[k]);
      if (left.length)
        throw new PodnetError('ERR_PODNET_DEMO', `the demo left things behind: ${left.join(', ')}`);
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
