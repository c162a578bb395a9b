// cbatch logs: one job's lines of the node log (lib/log.ts).
import { readFileSync } from 'node:fs'
import { loadConfig } from '../lib/policy/config.ts'
import { UsageError } from '../lib/errors.ts'
import { printable, printableJson } from '../lib/format.ts'
import { jobLines } from '../lib/log.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { CONFIG, configPath } from './options.ts'

const LOGS_OPTIONS = {
  config: { ...CONFIG, help: `${CONFIG.help}; the log is its log.file` },
  json: { type: 'boolean', help: 'the lines as they are (JSON, one a line)' },
} as const

export const logsCommand = defineCommand({
  name: 'logs', summary: 'one job\'s lines of the node log, across its hooks (prologue, starter, tasks, epilogue)',
  synopsis: 'JOBID [options]',
  description: 'JOBID is the full id (1234.head) or its number (1234), which matches 1234.<any server>.',
  options: LOGS_OPTIONS, rootOnly: true, exits: '0 done; 1 the log has no line of that job',
  examples: ['cbatch logs 1234.head', 'cbatch logs 1234 --json | jq \'select(.calls) | {hook, ms, engineMs}\''],
  run: logs,
})

async function logs([jobId, ...extra]: string[], values: OptionValues<typeof LOGS_OPTIONS>): Promise<number> {
  if (!jobId || extra.length) throw new UsageError('cbatch logs: one job id, e.g. cbatch logs 1234.head')
  const config = await loadConfig(configPath(values))
  if (!config.log.file) throw new UsageError(`${config.file} keeps no node log (log.file is "")`)
  let text: string
  try {
    text = readFileSync(config.log.file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read the node log ${config.log.file}: ${(err as NodeJS.ErrnoException).code ?? err}`)
  }
  const lines = jobLines(text, jobId)
  if (!lines.length) {
    process.stderr.write(`${printable(`cbatch logs: ${config.log.file} has no line of job ${jobId}`)}\n`)
    return 1
  }
  // Lines quote what jobs asked for: printed with their terminal escapes made visible.
  for (const line of lines) {
    if (values.json) {
      process.stdout.write(`${printableJson(line)}\n`)
      continue
    }
    const { time, hook, pid, level, message, ms, engineMs } = line
    const timing = typeof ms === 'number' ? ` (hook ${ms} ms; engine calls ${engineMs} ms in all, some at once)` : ''
    process.stdout.write(`${printable(`${time} ${hook}[${pid}] ${level} ${message}${timing}`)}\n`)
  }
  return 0
}
