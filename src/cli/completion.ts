// `podnet completion bash|zsh`: completion scripts generated from the
// command table, so they offer exactly the commands, sub-actions and flags
// `--help` shows.
// The command table comes in as an argument: commands.ts loads this module
// lazily, so importing the table here would make a circle.
import { UsageError } from './errors.js';
import { type CommandSpec, type FlagSpec, JSON_FLAG } from './flags.js';

/** Flags completion offers after a command: its own, `--json` and `--help`. */
function flagsOf(c: CommandSpec): FlagSpec[] {
  return [...c.flags, JSON_FLAG, { name: 'help', short: 'h', help: 'Display this message' }];
}

function flagWords(specs: readonly FlagSpec[]): string {
  return specs.flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]).join(' ');
}

/** Flags whose value is a directory or a path, completed as such. */
function valued(specs: readonly FlagSpec[], arg: string): string[] {
  return specs.filter((f) => f.arg === arg).map((f) => `--${f.name}`);
}

/** A bash script defining `_podnet` and `complete -F _podnet podnet`. */
export function bashCompletion(commands: readonly CommandSpec[]): string {
  const all = commands.flatMap(flagsOf);
  const dirs = [...new Set(valued(all, 'dir'))].join('|');
  const paths = [...new Set(valued(all, 'path'))].join('|');
  const others = [
    ...new Set(
      all
        .filter((f) => f.arg !== undefined && f.arg !== 'dir' && f.arg !== 'path')
        .flatMap((f) => [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])]),
    ),
  ].join('|');
  const cases = commands
    .map(
      (c) =>
        `    ${[c.name, ...(c.aliases ?? [])].join('|')}) flags='${flagWords(flagsOf(c))}'; actions='${(c.actions ?? []).join(' ')}' ;;`,
    )
    .join('\n');
  return `# bash completion for podnet: source <(podnet completion bash)
_podnet() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmd='' flags='' actions='' i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) cmd="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W '${commands.map((c) => c.name).join(' ')} --help --version --json' -- "$cur"))
    return
  fi
  case "$prev" in
    ${dirs}) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    ${paths}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    ${others}) COMPREPLY=(); return ;;
  esac
  case "$cmd" in
${cases}
    *) return ;;
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  elif [[ -n "$actions" && "$prev" == "$cmd" ]]; then
    COMPREPLY=($(compgen -W "$actions" -- "$cur"))
  fi
}
complete -F _podnet podnet
`;
}

/** TEXT inside a single-quoted zsh word, with _arguments' brackets and colons escaped. */
function zshDescription(text: string): string {
  return text.replace(/([[\]:\\])/g, '\\$1').replace(/'/g, "'\\''");
}

function zshFlag(f: FlagSpec): string[] {
  const action =
    f.arg === 'dir'
      ? ':dir:_files -/'
      : f.arg === 'path'
        ? ':path:_files'
        : f.arg
          ? `:${f.arg}: `
          : '';
  const repeat = f.multiple ? '*' : '';
  const names = [`--${f.name}`, ...(f.short ? [`-${f.short}`] : [])];
  return names.map((n) => `'${repeat}${n}[${zshDescription(f.help)}]${action}'`);
}

/** A zsh script for fpath (`_podnet`) that also works sourced (it calls compdef). */
export function zshCompletion(commands: readonly CommandSpec[]): string {
  const names = commands.map((c) => `    '${c.name}:${zshDescription(c.summary)}'`).join('\n');
  const cases = commands
    .map((c) => {
      const specs = flagsOf(c).flatMap(zshFlag);
      if (c.actions) specs.push(`'1:action:(${c.actions.join(' ')})'`);
      return `      ${[c.name, ...(c.aliases ?? [])].join('|')}) _arguments -s ${specs.join(' ')} '*:argument: ' ;;`;
    })
    .join('\n');
  return `#compdef podnet
# zsh completion for podnet: podnet completion zsh > "\${fpath[1]}/_podnet"
_podnet() {
  local -a commands
  commands=(
${names}
  )
  if (( CURRENT > 2 )); then
    local cmd=$words[2]
    shift words
    (( CURRENT-- ))
    case $cmd in
${cases}
    esac
  else
    _describe -t commands 'podnet command' commands
  fi
}
if [[ "\${zsh_eval_context[-1]}" == loadautofunc ]]; then
  _podnet "$@"
else
  compdef _podnet podnet
fi
`;
}

/** `podnet completion bash|zsh`: prints the script for `commands`. */
export async function completion(
  [shell]: string[],
  commands: readonly CommandSpec[],
): Promise<void> {
  if (shell === 'bash') process.stdout.write(bashCompletion(commands));
  else if (shell === 'zsh') process.stdout.write(zshCompletion(commands));
  else throw new UsageError(`no completion for shell '${shell}': bash or zsh`);
}
