// cbatch config: checks a config file, shows a queue's effective policy (lib/policy/config.ts).
import { checkHostPaths, loadConfig, type Config } from '../lib/policy/config.ts'
import { openEngine } from '../lib/engine/open.ts'
import { missingRuntimes } from '../lib/node/runtimes.ts'
import { ConfigError, describeIssue, EngineError, UnsafePathError, UsageError, type ConfigIssue } from '../lib/errors.ts'
import { printable, printableJson } from '../lib/format.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { CONFIG, configPath } from './options.ts'

const CONFIG_OPTIONS = { config: CONFIG, queue: { type: 'string', value: 'QUEUE', help: 'show: only this queue\'s policy' } } as const

export const configCommand = defineCommand({
  name: 'config', summary: 'check a config file, or show a queue\'s policy once defaults are merged',
  synopsis: ['check [FILE] [options]', 'show [FILE] [--queue QUEUE] [options]'],
  description: `check: every problem at once, as FILE:LINE:COLUMN: dot.path: message [rule]; also each file
d directory of it root would rely on that others could change or make first; then the
rnings, which do not fail the check (docs/config.md lists the rules).
ow: the effective policy (JSON, sizes in bytes), of every queue or one.`,
  options: CONFIG_OPTIONS, actions: ['check', 'show'], positionals: 'file', rootOnly: false,
  exits: '0 valid; 1 check found problems',
  examples: [
    'cbatch config check /etc/cbatch/cbatch.yaml.new && mv /etc/cbatch/cbatch.yaml.new /etc/cbatch/cbatch.yaml',
    'cbatch config show --queue batch',
  ],
  run: configAction,
})

/**
 * `config check [FILE]`: 0 when valid, 1 with every problem, the paths this node could not
 * safely obey among them; `config show`: the effective policy.
 */
async function configAction([action, file, ...extra]: string[], values: OptionValues<typeof CONFIG_OPTIONS>): Promise<number> {
  if (extra.length) throw new UsageError(`cbatch config ${action}: unexpected ${extra.join(' ')}`)
  if (action === 'check') {
    const path = file ?? configPath(values)
    try {
      const config = await loadConfig(path)
      const unsafe = checkHostPaths(config)
      const runtimes = await engineRuntimes(config)
      if (unsafe.length || runtimes.issues.length) throw new ConfigError(config.file, [...unsafe, ...runtimes.issues])
      process.stdout.write(`${printable(`${config.file}: valid, queues ${[...config.queues.keys()].join(', ') || '(none: every job runs natively)'}`)}\n`)
      // Obeyed as written, but likely not what was meant: said, with the rule that found it.
      for (const warning of config.warnings) process.stdout.write(`${printable(`${describeIssue(config.file, warning)} (warning)`)}\n`)
      if (runtimes.unchecked) process.stdout.write(`${printable(`${config.file}: ${runtimes.unchecked} (warning)`)}\n`)
      return 0
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      for (const issue of err.issues) process.stdout.write(`${printable(describeIssue(err.file, issue))}\n`)
      return 1
    }
  }
  if (action === 'show') {
    const config = await loadConfig(file ?? configPath(values))
    if (values.queue !== undefined && !config.queues.has(values.queue)) {
      throw new UsageError(`queue ${values.queue} is not in ${config.file}: its jobs run natively`)
    }
    const queues = Object.fromEntries([...config.queues].filter(([name]) => values.queue === undefined || name === values.queue))
    const shown = values.queue === undefined ? { ...config, queues } : queues[values.queue]
    process.stdout.write(`${printableJson(shown, 2)}\n`)
    return 0
  }
  throw new UsageError(`cbatch config ${action ?? ''}: expected check or show`)
}

/**
 * The queues' runtimes against the engine's, when a queue names one: a runtime the engine
 * lacks is a problem of the file, at its line. An engine that cannot be asked (not running,
 * not this user's to ask, its socket not root's) leaves them unchecked, and says so.
 */
async function engineRuntimes(config: Config): Promise<{ issues: ConfigIssue[]; unchecked?: string }> {
  if (![...config.queues.values()].some(q => q.runtime !== undefined)) return { issues: [] }
  try {
    return { issues: await missingRuntimes(config, openEngine({ ...config.engine, timeout: Math.min(config.engine.timeout, 10) })) }
  } catch (err) {
    if (!(err instanceof EngineError) && !(err instanceof UnsafePathError)) throw err
    return { issues: [], unchecked: `the queues' runtimes were not checked against the engine: ${err.message}` }
  }
}
