// cbatch: the command-line face of the package (cbatch --help). Its commands are one list,
// COMMANDS below, each a module of bin/ (bin/command.ts): overview, dispatch, help and
// completion all read it.
//   cbatch run SCRIPT ...   runs one job the way pbs_mom would on this node (bin/run.ts)
//   cbatch gc ...           removes containers of jobs this pbs_mom no longer knows (bin/gc.ts)
//   cbatch images ...       the node's image cache (bin/images.ts)
//   cbatch config ...       checks a config, shows a queue's effective policy (bin/config.ts)
//   cbatch ps ...           the job containers on this node (bin/ps.ts)
//   cbatch doctor ...       what on this node makes jobs fail (bin/doctor.ts)
//   cbatch logs JOBID       one job's lines of the node log (bin/logs.ts)
//   cbatch completion bash  bash completion, from the same list (bin/completion.ts)
import { CbatchError, UsageError } from '../lib/errors.ts'
import { printable } from '../lib/format.ts'
import { VERSION } from '../lib/version.ts'
import type { Command } from './command.ts'
import { completionCommand } from './completion.ts'
import { configCommand } from './config.ts'
import { doctorCommand } from './doctor.ts'
import { gcCommand } from './gc.ts'
import { imagesCommand } from './images.ts'
import { logsCommand } from './logs.ts'
import { psCommand } from './ps.ts'
import { runCommand } from './run.ts'

/** The CLI: every command, in the order --help lists them. */
const COMMANDS: readonly Command[] = [
  runCommand, gcCommand, imagesCommand, configCommand, psCommand, doctorCommand, logsCommand, completionCommand(() => COMMANDS),
]

const OVERVIEW = `usage: cbatch COMMAND [options]       (cbatch COMMAND --help for its options and examples)
${COMMANDS.map(c => `  ${c.name.padEnd(11)} ${c.summary}`).join('\n')}
  --version   the version of cbatch`

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === '--version') {
    process.stdout.write(`cbatch ${VERSION}\n`)
    return 0
  }
  if (name === undefined) {
    process.stderr.write(`${OVERVIEW}\n`)
    return USAGE_ERROR
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${OVERVIEW}\n`)
    return 0
  }
  const command = COMMANDS.find(c => c.name === name)
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}: see cbatch --help`)
  return command.invoke(rest)
}

/** Exit codes: 64 a usage mistake (sysexits' EX_USAGE), 125 cbatch could not do it. */
const USAGE_ERROR = 64
const FAILED = 125

/** Exits once what was written has reached stdout and stderr: a pipe takes large outputs in parts. */
function exitWhenWritten(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)))
}

main(process.argv.slice(2)).then(exitWhenWritten, err => {
  const message = err instanceof CbatchError ? err.userMessage : (err as Error).message
  // Said as `cbatch: …`, or as `cbatch COMMAND: …` by a command's own checks.
  process.stderr.write(`${printable(message.startsWith('cbatch ') ? message : `cbatch: ${message}`)}\n`)
  exitWhenWritten(err instanceof UsageError ? USAGE_ERROR : FAILED)
})
