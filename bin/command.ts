// One CLI command as one value: its name, options, help and handler together. The CLI's
// overview, dispatch, per-command help and shell completion all read the same list
// (bin/cbatch.ts), so a command cannot be listed without being wired.
import { parseArgs } from 'node:util'
import { UsageError } from '../lib/errors.ts'

/** What bash offers for a value: file names, directory names, user names, or nothing. */
export type Completion = 'file' | 'directory' | 'user' | 'none'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  multiple?: boolean
  /** The value's name in the help (FILE, USER); string options only. */
  value?: string
  help: string
  complete?: Completion
}

export type OptionSpecs = Record<string, OptionSpec>

/** The parsed options of one command, typed from its own specs. */
export type OptionValues<O extends OptionSpecs> = {
  [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : O[K]['multiple'] extends true ? string[] : string
}

export interface CommandSpec<O extends OptionSpecs> {
  name: string
  /** One line, for `cbatch --help`. */
  summary: string
  /** What follows `cbatch NAME` in the usage line(s). */
  synopsis: string | readonly string[]
  /** Said after the usage line: what the command does, what it relies on. */
  description?: string
  options: O
  /** Words the first argument may be (config check|show), offered by completion. */
  actions?: readonly string[]
  /** What completion offers for other arguments. */
  positionals?: Completion
  /** Its exit statuses before 64 (a usage mistake) and 125 (cbatch could not do it); `0 done` if not said. */
  exits?: string
  examples: readonly string[]
  /** Only root may run it (it acts as pbs_mom's hooks do). */
  rootOnly: boolean
  run(positionals: string[], values: OptionValues<O>): Promise<number>
}

/** A command with its types hidden: what the registry holds. */
export interface Command {
  name: string
  summary: string
  options: OptionSpecs
  actions: readonly string[]
  positionals: Completion
  help(): string
  /** Parses `args` with this command's own options and runs it. */
  invoke(args: string[], isRoot?: boolean): Promise<number>
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', help: 'this help' }

export function defineCommand<const O extends OptionSpecs>(spec: CommandSpec<O>): Command {
  const options: OptionSpecs = { ...spec.options, help: HELP }
  return {
    name: spec.name,
    summary: spec.summary,
    options,
    actions: spec.actions ?? [],
    positionals: spec.positionals ?? 'none',
    help: () => helpText(spec, options),
    async invoke(args, isRoot = process.getuid?.() === 0) {
      const { positionals, values } = parseCommandArgs(spec.name, options, args)
      if (values.help) {
        process.stdout.write(helpText(spec, options))
        return 0
      }
      if (spec.rootOnly && !isRoot) throw new UsageError(`cbatch ${spec.name} must run as root, like pbs_mom`)
      // parseArgs returns every command's values in one loose type; `options` is this spec's own.
      return spec.run(positionals, values as OptionValues<O>)
    },
  }
}

/** parseArgs, its mistakes said in the command's terms (Node's own text names no command and suggests `--`). */
export function parseCommandArgs(command: string, options: OptionSpecs, args: string[]) {
  const config = Object.fromEntries(Object.entries(options).map(([name, o]) =>
    [name, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) }]))
  try {
    return parseArgs({ args, options: config, allowPositionals: true, strict: true })
  } catch (err) {
    const code = (err as { code?: string }).code ?? ''
    if (!code.startsWith('ERR_PARSE_ARGS')) throw err
    const option = /'(?:-\w, )?(--?[^' ]+)/.exec((err as Error).message)?.[1] ?? '?'
    const name = option.replace(/^--?/, '')
    const spec = options[name] ?? Object.values(options).find(o => o.short === name)
    const why = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? `unknown option ${option}`
      : spec?.type === 'string' ? `${option} needs a value (${spec.value ?? 'VALUE'})`
        : `${option} takes no value`
    throw new UsageError(`cbatch ${command}: ${why} (cbatch ${command} --help)`)
  }
}

/** `usage:`, what it does, its options, exit statuses and examples. */
function helpText(spec: CommandSpec<OptionSpecs>, options: OptionSpecs): string {
  const synopses = typeof spec.synopsis === 'string' ? [spec.synopsis] : spec.synopsis
  const lines = synopses.map((s, i) => `${i ? '       ' : 'usage: '}cbatch ${spec.name}${s ? ` ${s}` : ''}`)
  if (spec.description) lines.push('', spec.description)
  lines.push('', 'options:')
  for (const [name, o] of Object.entries(options)) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`
    const [first, ...more] = o.help.split('\n')
    lines.push(`  ${flag.padEnd(20)}${flag.length >= 20 ? `\n${' '.repeat(22)}` : ''}${first}${o.multiple ? ' (repeatable)' : ''}`)
    for (const line of more) lines.push(`${' '.repeat(22)}${line}`)
  }
  lines.push('', `exit status: ${spec.exits ?? '0 done'}; 64 a usage mistake; 125 cbatch could not do it`)
  lines.push('', 'examples:', ...spec.examples.map(e => `  ${e}`))
  return `${lines.join('\n')}\n`
}
