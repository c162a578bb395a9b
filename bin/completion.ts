// `cbatch completion bash`: a bash completion script written from the CLI's registry
// (bin/command.ts), so every command, action and option it offers is one the CLI has.
import { UsageError } from '../lib/errors.ts'
import { defineCommand, type Command, type Completion } from './command.ts'

const COMPGEN: Record<Completion, string> = { file: '-f', directory: '-d', user: '-u', none: '' }

function words(command: Command): string {
  return Object.entries(command.options).flatMap(([name, o]) => [`--${name}`, ...(o.short ? [`-${o.short}`] : [])]).join(' ')
}

/** Bash's `compgen` for one kind of value: COMPREPLY from it, or nothing. */
function reply(kind: Completion): string {
  return kind === 'none' ? 'COMPREPLY=()' : `COMPREPLY=($(compgen ${COMPGEN[kind]} -- "$cur"))`
}

export function bashCompletion(commands: readonly Command[]): string {
  const valueCases = commands.flatMap(c => Object.entries(c.options).filter(([, o]) => o.type === 'string').map(([name, o]) =>
    `    ${c.name}:--${name}${o.short ? `|${c.name}:-${o.short}` : ''}) ${reply(o.complete ?? 'none')}; return ;;`))
  const commandCases = commands.map(c => {
    const actions = c.actions.length ? `
      if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "${c.actions.join(' ')}" -- "$cur")); return; fi` : ''
    return `    ${c.name})
      if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "${words(c)}" -- "$cur")); return; fi${actions}
      ${reply(c.positionals)} ;;`
  })
  return `# bash completion for cbatch, written by \`cbatch completion bash\`:
#   cbatch completion bash > /etc/bash_completion.d/cbatch
_cbatch() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${commands.map(c => c.name).join(' ')} --help --version" -- "$cur"))
    return
  fi
  case "\${COMP_WORDS[1]}:$prev" in
${valueCases.join('\n')}
  esac
  case "\${COMP_WORDS[1]}" in
${commandCases.join('\n')}
  esac
}
complete -o filenames -F _cbatch cbatch
`
}

/** `cbatch completion bash`, for the CLI's `commands` (itself among them). */
export function completionCommand(commands: () => readonly Command[]): Command {
  return defineCommand({
    name: 'completion', summary: 'a bash completion script for cbatch',
    synopsis: 'bash',
    description: 'Prints a script that completes cbatch\'s commands, actions and options in bash.',
    options: {}, actions: ['bash'], rootOnly: false,
    examples: ['cbatch completion bash > /etc/bash_completion.d/cbatch', 'source <(cbatch completion bash)'],
    run: async ([shell, ...extra]) => {
      if (shell !== 'bash' || extra.length) throw new UsageError('cbatch completion: bash is the one shell it writes for (cbatch completion bash)')
      process.stdout.write(bashCompletion(commands()))
      return 0
    },
  })
}
