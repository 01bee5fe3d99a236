import { cac } from 'cac';
import { COMMANDS, EXIT_STATUS_HELP } from './commands.js';
import { describeError, EXIT_OK, SilentExit, UsageError } from './errors.js';
import { addFlags, JSON_FLAG, readFlags } from './flags.js';

/** podnet's version, as `--version` prints it. */
const VERSION = '0.1.0';

/**
 * Runs the podnet command line with ARGV (without node and script) and
 * resolves to the exit code: 0 done, 1 the operation failed, 2 the command
 * line is wrong. An error is one line on stderr ending in its code; the stack
 * only with NODE_DEBUG=podnet.
 */
export async function main(argv: string[]): Promise<number> {
  const cli = cac('podnet');
  cli.option(`--${JSON_FLAG.name}`, JSON_FLAG.help);
  for (const spec of COMMANDS) {
    const command = cli.command(`${spec.name} ${spec.args}`.trim(), spec.summary);
    for (const alias of spec.aliases ?? []) command.alias(alias);
    for (const example of spec.examples) command.example(example);
    // Flags are checked by readFlags against the argv as typed; cac's own
    // check would name them camelCased.
    addFlags(command, spec.flags)
      .allowUnknownOptions()
      .action(async () => spec.run(cli.args.map(String), readFlags(cli, spec.flags)));
  }
  cli.help((sections) => {
    const typed = cli.matchedCommandName;
    const spec = COMMANDS.find((c) => c.name === typed || c.aliases?.includes(typed ?? ''));
    // cac shows a command's summary only in the command list: its own help
    // gets the full description under the usage line.
    if (spec !== undefined)
      sections.splice(2, 0, { title: 'Description', body: `  ${spec.description}` });
    sections.push({ title: 'Exit status', body: EXIT_STATUS_HELP });
    return sections;
  });
  cli.version(VERSION);

  try {
    cli.parse(['node', 'podnet', ...argv], { run: false });
    if (!cli.matchedCommand) {
      // cac has printed the help or version (and unset the command).
      if (cli.options['help'] === true || cli.options['version'] === true) return EXIT_OK;
      if (cli.args.length > 0) {
        throw new UsageError(`unknown command '${cli.args[0]}' (see podnet --help)`);
      }
      readFlags(cli, []); // names an unknown flag as such
      throw new UsageError('missing command (see podnet --help)');
    }
    const status: unknown = await cli.runMatchedCommand();
    return typeof status === 'number' ? status : EXIT_OK;
  } catch (err) {
    if (err instanceof SilentExit) return err.exitCode;
    const report = describeError(err);
    process.stderr.write(`${report.line}\n`);
    if (process.env['NODE_DEBUG']?.split(',').includes('podnet'))
      process.stderr.write(`${(err as Error).stack}\n`);
    const spec = COMMANDS.find((c) => c.name === cli.matchedCommandName);
    return spec?.failureStatus?.(cli.args.map(String)) ?? report.exitCode;
  }
}
