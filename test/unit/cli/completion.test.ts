// `podnet completion bash|zsh`: the scripts parse, define the completion,
// and offer what the command table says.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands.js';
import { bashCompletion, zshCompletion } from '../../../src/cli/completion.js';
import { reportSkip } from '../../helpers/skip.js';

const execFileP = promisify(execFile);
const haveZsh = existsSync('/usr/bin/zsh') || existsSync('/bin/zsh');
reportSkip('the zsh completion test', haveZsh ? undefined : 'zsh is not installed');

/** What `_podnet` offers for the words typed so far (the last one being completed). */
async function complete(...words: string[]): Promise<string[]> {
  const list = ['podnet', ...words].map((w) => `'${w}'`).join(' ');
  const script = `${bashCompletion(COMMANDS)}
COMP_WORDS=(${list}); COMP_CWORD=${words.length}; _podnet; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await execFileP('bash', ['-c', script]);
  return stdout.split('\n').filter((l) => l !== '');
}

describe('bash completion', () => {
  it('parses (bash -n) and defines `complete -p podnet` when sourced', async () => {
    await execFileP('bash', ['-n', '-c', bashCompletion(COMMANDS)]);
    const { stdout } = await execFileP(
      'bash',
      ['-c', 'source /dev/stdin <<< "$PODNET_SCRIPT"; complete -p podnet'],
      { env: { ...process.env, PODNET_SCRIPT: bashCompletion(COMMANDS) } },
    );
    expect(stdout).toBe('complete -F _podnet podnet\n');
  });

  it('completes commands, sub-actions and flags from the command table', async () => {
    expect(await complete('')).toEqual([
      ...COMMANDS.map((c) => c.name),
      '--help',
      '--version',
      '--json',
    ]);
    expect(await complete('st')).toEqual(['stats']);
    expect(await complete('netns', '')).toEqual(['add', 'ls', 'rm', 'exec']);
    expect(await complete('completion', '')).toEqual(['bash', 'zsh']);
    expect(await complete('stats', '--in')).toEqual(['--interval']);
    expect(await complete('netns', 'ls', '--')).toEqual([
      '--dir',
      '--netns-dir',
      '--json',
      '--help',
    ]);
    // A flag's value is not a flag or an action.
    expect(await complete('up', 'c1', '--mode', '')).toEqual([]);
  });
});

describe.skipIf(!haveZsh)('zsh completion', () => {
  it('parses (zsh -n) and registers _podnet with compdef when sourced', async () => {
    await execFileP('zsh', ['-n', '-c', zshCompletion(COMMANDS)]);
    const { stdout } = await execFileP(
      'zsh',
      [
        '-f',
        '-c',
        'autoload -U compinit && compinit -u -D && eval "$PODNET_SCRIPT" && print -r -- $_comps[podnet]',
      ],
      { env: { ...process.env, PODNET_SCRIPT: zshCompletion(COMMANDS) } },
    );
    expect(stdout).toBe('_podnet\n');
  });

  it('lists every command with its summary', () => {
    const script = zshCompletion(COMMANDS);
    for (const c of COMMANDS) expect(script).toContain(`\n    '${c.name}:`);
    expect(script).toContain("'1:action:(add ls rm exec)'");
  });
});
