// cbatch: the command-line face of the package (cbatch --help). Its commands are one list,
// COMMANDS below (bin/command.ts): overview, dispatch, help and completion all read it.
//   cbatch run SCRIPT ...   runs one job the way pbs_mom would on this node (emulator/emulator.ts)
//   cbatch gc ...           removes containers of jobs this pbs_mom no longer knows (lib/job/gc.ts)
//   cbatch images ...       the node's image cache (bin/images.ts)
//   cbatch config ...       checks a config, shows a queue's effective policy
//   cbatch ps ...           the job containers on this node (lib/node/jobs.ts)
//   cbatch doctor ...       what on this node makes jobs fail (lib/node/doctor.ts)
//   cbatch logs JOBID       one job's lines of the node log (lib/log.ts)
//   cbatch completion bash  bash completion, from the same list (bin/completion.ts)
import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { checkHostPaths, DEFAULT_CONFIG_PATH, loadConfig } from '../lib/policy/config.ts'
import { openEngine } from '../lib/engine/open.ts'
import { DEFAULT_PBS_HOME, emulateJob } from '../emulator/emulator.ts'
import { startSisters } from '../emulator/engines.ts'
import { EMULATOR_TOOLS } from '../emulator/tm.ts'
import { LABEL } from '../lib/engine/labels.ts'
import type { JobContainer } from '../lib/engine/engine.ts'
import { CbatchError, ConfigError, describeIssue, UsageError } from '../lib/errors.ts'
import { formatBytes, formatDuration, formatTable, printable, printableJson } from '../lib/format.ts'
import { nodeJobs } from '../lib/node/jobs.ts'
import { parseRequest } from '../lib/policy/resources.ts'
import { diagnose } from '../lib/node/doctor.ts'
import { VERSION } from '../lib/version.ts'
import { jobLines } from '../lib/log.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { images, IMAGES_ACTIONS } from './images.ts'
import { defineCommand, type Command, type OptionValues } from './command.ts'
import { bashCompletion } from './completion.ts'

// Options more than one command has.
const CONFIG = { type: 'string', value: 'FILE', complete: 'file', help: `cbatch.yaml (default: $CBATCH_CONFIG, else ${DEFAULT_CONFIG_PATH})` } as const
const PBS_HOME = { type: 'string', value: 'DIR', complete: 'directory', help: 'PBS_HOME of this node\'s pbs_mom (default: torque.home of the config)' } as const
const JSON_OUT = { type: 'boolean', help: 'as JSON' } as const

const RUN_OPTIONS = {
  user: { type: 'string', value: 'USER', complete: 'user', help: 'job owner (default: $SUDO_USER)' },
  queue: { type: 'string', value: 'QUEUE', help: 'queue (default: batch), one the config names' },
  resources: { type: 'string', value: 'LIST', help: 'Resource_List, e.g. nodes=1:ppn=2,mem=1gb,walltime=00:10:00' },
  config: CONFIG,
  var: { type: 'string', short: 'v', multiple: true, value: 'VAR=VAL', help: 'a job variable, as qsub -v' },
  workdir: { type: 'string', value: 'DIR', complete: 'directory', help: 'PBS_O_WORKDIR, where qsub ran (default: the current directory)' },
  join: { type: 'boolean', help: 'qsub -j oe: the job\'s stderr into its output file' },
  'array-index': { type: 'string', value: 'I', help: 'run it as sub-job I of an array job (id N[I].host, files N-I.host.*)' },
  attempts: { type: 'string', value: 'N', help: 'start a job whose prologue requeues it up to N times in a row, as pbs_sched would' },
  'torque-cgroups': { type: 'string', value: 'C', help: 'as pbs_mom built with cgroups: the job\'s cgroups (cpuset C), made before and removed after' },
  task: { type: 'string', multiple: true, value: '\'CMD ARGS\'', help: 'a TM task started while the job runs, as pbsdsh would (split at spaces)' },
  nodes: { type: 'string', value: 'N', help: `run the job on N nodes: this one and N-1 sisters, each with its own
engine and PBS_HOME; in the job, ${EMULATOR_TOOLS}/pbsdsh starts tasks
on them (the queue needs network: host and that directory as a volume)` },
  'pbs-home': { type: 'string', value: 'DIR', complete: 'directory', help: `the emulated PBS_HOME (default: ${DEFAULT_PBS_HOME})` },
  json: { type: 'boolean', help: 'print the job\'s record as JSON instead of its output' },
  follow: { type: 'boolean', help: 'print the job\'s output and error as they are written, while it runs' },
  keep: { type: 'boolean', help: 'keep the job\'s files in PBS_HOME for inspection' },
} as const
const GC_OPTIONS = {
  config: CONFIG, 'pbs-home': PBS_HOME,
  grace: { type: 'string', value: 'SECONDS', help: 'leave containers younger than this (default: gc.graceSeconds)' },
  'dry-run': { type: 'boolean', help: 'only list what would be removed' },
} as const
const IMAGES_OPTIONS = {
  config: CONFIG,
  json: { type: 'boolean', help: 'list: as JSON' },
  queue: { type: 'string', value: 'QUEUE', help: 'pull: only this queue\'s image (default: every queue\'s)' },
  'dry-run': { type: 'boolean', help: 'prune: only list what would be removed to stay under images.budget' },
} as const
const CONFIG_OPTIONS = { config: CONFIG, queue: { type: 'string', value: 'QUEUE', help: 'show: only this queue\'s policy' } } as const
const NODE_OPTIONS = { config: CONFIG, 'pbs-home': PBS_HOME, json: JSON_OUT } as const
const LOGS_OPTIONS = {
  config: { ...CONFIG, help: `${CONFIG.help}; the log is its log.file` },
  json: { type: 'boolean', help: 'the lines as they are (JSON, one a line)' },
} as const

/** The CLI: every command, its help and its handler (bin/command.ts). */
const COMMANDS: readonly Command[] = [
  defineCommand({
    name: 'run', summary: 'run one job the way pbs_mom would on this node (the pbs_mom emulator)',
    synopsis: 'SCRIPT [script args] [options]',
    description: `Runs SCRIPT as a job of --user: the installed hooks (prologue, job starter, epilogue) run
as real processes, as pbs_mom would run them, against this node's engine and the config.
The job's output and error are printed when it ends (--follow: as they come).`,
    options: RUN_OPTIONS, positionals: 'file', rootOnly: true,
    exits: 'the job\'s own (128+N when killed by signal N; 125 also when its prologue refused or requeued it)',
    examples: [
      'cbatch run job.sh --user alice --resources nodes=1:ppn=2,mem=1gb',
      'cbatch run mpi.sh --user alice --queue mpi --nodes 3 --resources nodes=3:ppn=2',
    ],
    run: runJob,
  }),
  defineCommand({
    name: 'gc', summary: 'remove containers (and cbatch\'s files) of jobs this pbs_mom no longer knows, never another mom\'s; safe from cron',
    synopsis: '[options]',
    description: `Removes the job containers this node's pbs_mom made (label cbatch.mom) whose job it no longer
knows (no .JB or .JC in mom_priv/jobs, on two looks), with their account files and scratch.
Containers an older cbatch made without that label are named and left alone.`,
    options: GC_OPTIONS, rootOnly: true,
    examples: ['cbatch gc --dry-run', '*/15 * * * * /usr/local/sbin/cbatch gc     (crontab)'],
    run: gc,
  }),
  defineCommand({
    name: 'images', summary: 'the node\'s images: list, pre-pull, prune under a budget; safe from cron',
    synopsis: '[list | pull | prune] [options]',
    description: `list (the default): each image's size, its last use by a job, the queues naming it, whether in use.
pull: pulls the queues' images now, with progress, so the first job does not wait.
prune: removes images least recently used first until they fit images.budget; never one in
use or named by a queue.`,
    options: IMAGES_OPTIONS, actions: IMAGES_ACTIONS, rootOnly: true,
    examples: ['cbatch images', 'cbatch images pull --queue mpi', 'cbatch images prune --dry-run'],
    run: imagesCommand,
  }),
  defineCommand({
    name: 'config', summary: 'check a config file, or show a queue\'s policy once defaults are merged',
    synopsis: ['check [FILE] [options]', 'show [FILE] [--queue QUEUE] [options]'],
    description: `check: every problem at once, as FILE:LINE:COLUMN: dot.path: message [rule]; also each file
and directory of it root would rely on that others could change or make first; then the
warnings, which do not fail the check (docs/config.md lists the rules).
show: the effective policy (JSON, sizes in bytes), of every queue or one.`,
    options: CONFIG_OPTIONS, actions: ['check', 'show'], positionals: 'file', rootOnly: false,
    exits: '0 valid; 1 check found problems',
    examples: [
      'cbatch config check /etc/cbatch/cbatch.yaml.new && mv /etc/cbatch/cbatch.yaml.new /etc/cbatch/cbatch.yaml',
      'cbatch config show --queue batch',
    ],
    run: configCommand,
  }),
  defineCommand({
    name: 'ps', summary: 'the job containers on this node: job, owner, queue, image, state, age, CPU and memory now, their pbs_mom',
    synopsis: '[options]',
    options: NODE_OPTIONS, rootOnly: true,
    examples: ['cbatch ps', 'cbatch ps --json | jq \'.[] | select(.knownToMom == false)\''],
    run: (_, values) => ps(values),
  }),
  defineCommand({
    name: 'doctor', summary: 'check everything on this node that makes jobs fail or run unconfined, with the fix',
    synopsis: '[options]',
    description: 'One line per check: ok, WARN or FAIL, what was found and, for the others, the fix.',
    options: NODE_OPTIONS, rootOnly: true, exits: '0 no FAIL; 1 at least one FAIL',
    examples: ['cbatch doctor', 'pdsh -w node[01-64] cbatch doctor | grep -v \' ok \''],
    run: (_, values) => doctor(values),
  }),
  defineCommand({
    name: 'logs', summary: 'one job\'s lines of the node log, across its hooks (prologue, starter, tasks, epilogue)',
    synopsis: 'JOBID [options]',
    description: 'JOBID is the full id (1234.head) or its number (1234), which matches 1234.<any server>.',
    options: LOGS_OPTIONS, rootOnly: true, exits: '0 done; 1 the log has no line of that job',
    examples: ['cbatch logs 1234.head', 'cbatch logs 1234 --json | jq \'select(.calls) | {hook, ms, engineMs}\''],
    run: logs,
  }),
  defineCommand({
    name: 'completion', summary: 'a bash completion script for cbatch',
    synopsis: 'bash',
    description: 'Prints a script that completes cbatch\'s commands, actions and options in bash.',
    options: {}, actions: ['bash'], rootOnly: false,
    examples: ['cbatch completion bash > /etc/bash_completion.d/cbatch', 'source <(cbatch completion bash)'],
    run: async ([shell, ...extra]) => {
      if (shell !== 'bash' || extra.length) throw new UsageError('cbatch completion: bash is the one shell it writes for (cbatch completion bash)')
      process.stdout.write(bashCompletion(COMMANDS))
      return 0
    },
  }),
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

/**
 * The config a command reads: --config, else the one install.sh installed the CLI with
 * (CBATCH_CONFIG, set by the `cbatch` it put on PATH), else the default; on a machine where only
 * the demo ran (./install.sh --demo) there is none, and the demo's own is used, saying so.
 */
function configPath(values: { config?: string }, env = process.env): string {
  if (values.config) return values.config
  if (env.CBATCH_CONFIG) return env.CBATCH_CONFIG
  if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH
  const demo = resolve(dirname(process.argv[1]), '../config/cbatch.yaml')
  if (!existsSync(demo)) throw new UsageError(`no config at ${DEFAULT_CONFIG_PATH}: pass --config FILE (cbatch.yaml; the repository has config/cbatch.yaml)`)
  if (!demoNoted) process.stderr.write(`cbatch: no ${DEFAULT_CONFIG_PATH}; using the demo's ${demo} (--config FILE to choose)\n`)
  demoNoted = true
  return demo
}
let demoNoted = false

/**
 * `config check [FILE]`: 0 when valid, 1 with every problem, the paths this node could not
 * safely obey among them; `config show`: the effective policy.
 */
async function configCommand([action, file, ...extra]: string[], values: OptionValues<typeof CONFIG_OPTIONS>): Promise<number> {
  if (extra.length) throw new UsageError(`cbatch config ${action}: unexpected ${extra.join(' ')}`)
  if (action === 'check') {
    const path = file ?? configPath(values)
    try {
      const config = await loadConfig(path)
      const unsafe = checkHostPaths(config)
      if (unsafe.length) throw new ConfigError(config.file, unsafe)
      process.stdout.write(`${printable(`${config.file}: valid, queues ${[...config.queues.keys()].join(', ') || '(none: every job runs natively)'}`)}\n`)
      // Obeyed as written, but likely not what was meant: said, with the rule that found it.
      for (const warning of config.warnings) process.stdout.write(`${printable(`${describeIssue(config.file, warning)} (warning)`)}\n`)
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

async function imagesCommand([action = 'list', ...extra]: string[], values: OptionValues<typeof IMAGES_OPTIONS>): Promise<number> {
  const known = IMAGES_ACTIONS.find(a => a === action)
  if (!known || extra.length) throw new UsageError(`cbatch images ${[action, ...extra].join(' ')}: expected list, pull or prune`)
  const config = await loadConfig(configPath(values))
  return images(known, config, openEngine(config.engine), { json: values.json, dryRun: values['dry-run'], queue: values.queue })
}

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

async function doctor(values: OptionValues<typeof NODE_OPTIONS>): Promise<number> {
  const findings = await diagnose({
    configPath: configPath(values), pbsHome: values['pbs-home'], engineFor: config => openEngine(config.engine),
  })
  if (values.json) process.stdout.write(`${printableJson(findings)}\n`)
  else for (const f of findings) process.stdout.write(`${printable(`${f.verdict.padEnd(4)} ${f.what}: ${f.detail}${f.fix ? ` -> ${f.fix}` : ''}`)}\n`)
  return findings.some(f => f.verdict === 'FAIL') ? 1 : 0
}

async function ps(values: OptionValues<typeof NODE_OPTIONS>): Promise<number> {
  const config = await loadConfig(configPath(values))
  const momPriv = join(values['pbs-home'] ?? config.torque.home, 'mom_priv')
  const jobs = await nodeJobs(openEngine(config.engine), momPriv)
  if (values.json) {
    process.stdout.write(`${printableJson(jobs)}\n`)
    return 0
  }
  const rows = [['JOB', 'OWNER', 'QUEUE', 'IMAGE', 'STATE', 'AGE', 'CPU', 'MEMORY', 'MOM', 'JOB FILE'], ...jobs.map(j => [
    j.job, j.user, j.queue, j.image, j.state, formatDuration(j.ageSeconds),
    j.cpuSeconds === undefined ? '-' : `${j.cpuSeconds.toFixed(1)} s`,
    j.memoryBytes === undefined ? '-' : `${formatBytes(j.memoryBytes)}${j.memoryLimitBytes ? ` / ${formatBytes(j.memoryLimitBytes)}` : ''}`,
    j.mom ?? '(unlabelled)', j.knownToMom ? 'known' : 'unknown',
  ])]
  process.stdout.write(formatTable(rows))
  return 0
}

async function runJob([script, ...scriptArgs]: string[], values: OptionValues<typeof RUN_OPTIONS>): Promise<number> {
  if (values.follow && values.json) throw new UsageError('cbatch run: --follow prints the output as it comes, --json the record at the end: one or the other')
  if (!script) throw new UsageError('cbatch run: which job script? (cbatch run --help)')
  const user = values.user ?? process.env.SUDO_USER
  if (!user) throw new UsageError('say which user owns the job: --user USER')
  // Mistakes of the command line are said here, not as a job its prologue refused (125).
  if (!statSync(script, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`cbatch run: no job script ${script}`)
  const resources = values.resources ?? 'nodes=1:ppn=1'
  try {
    parseRequest(resources)
  } catch (err) {
    // A request the prologue refuses by policy is left to it: that is what `cbatch run` tries out.
    if (err instanceof UsageError) throw new UsageError(`cbatch run: --resources: ${err.userMessage}`)
  }
  const variables = Object.fromEntries((values.var ?? []).map(v => {
    const eq = v.indexOf('=')
    if (eq <= 0) throw new UsageError(`-v ${v}: expected VAR=value`)
    return [v.slice(0, eq), v.slice(eq + 1)]
  }))
  const cancel = new AbortController()
  // Ctrl-C or kill of `cbatch run` is a qdel of the job.
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => cancel.abort())
  // pbs_mom runs a job of a queue the config does not name natively: here that is a typo, not a choice.
  const queue = values.queue ?? 'batch'
  const { file, queues } = await loadConfig(configPath(values))
  if (!queues.has(queue)) throw new UsageError(`--queue ${queue}: not a queue of ${file} (${[...queues.keys()].join(', ') || 'it has none'})`)
  const nodes = values.nodes === undefined ? 1 : whole(values.nodes, '--nodes')
  if (nodes < 1 || nodes > 16) throw new UsageError(`--nodes ${values.nodes}: from 1 to 16`)
  const sisters = nodes > 1 ? await startSisters(nodes - 1, resolve(configPath(values))) : undefined
  const job = await emulateJob({
    sisters: sisters?.sisters,
    script: resolve(script), scriptArgs, user, queue, resources,
    config: resolve(configPath(values)), variables, hooksDir: hooksDir(),
    tasks: (values.task ?? []).map(task => task.split(' ').filter(Boolean)),
    workDir: values.workdir,
    arrayIndex: values['array-index'] === undefined ? undefined : whole(values['array-index'], '--array-index'),
    attempts: values.attempts === undefined ? undefined : whole(values.attempts, '--attempts'),
    join: values.join,
    cgroups: values['torque-cgroups'] === undefined ? undefined : { cpus: values['torque-cgroups'] },
    cancel: cancel.signal, keep: values.keep, pbsHome: values['pbs-home'] && resolve(values['pbs-home']),
    follow: values.follow ? { out: process.stdout, err: process.stderr } : undefined,
  }).finally(() => sisters?.dispose())
  if (values.json) {
    process.stdout.write(`${JSON.stringify(job)}\n`)
  } else if (!values.follow) {
    process.stdout.write(job.stdout)
    process.stderr.write(job.stderr)
  }
  if (job.outcome !== 'ran') {
    process.stderr.write(`cbatch run: prologue exited ${job.prologue.status}: job ${job.outcome}\n`)
    return 125
  }
  // 256+signal (killed) and negative TORQUE codes do not fit an exit code.
  const status = job.exitStatus!
  return status > 255 ? 128 + (status - 256) : status < 0 ? 125 : status
}

function whole(value: string, option: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new UsageError(`${option} ${value}: expected a whole number`)
  return Number(value)
}

async function gc(_: string[], values: OptionValues<typeof GC_OPTIONS>): Promise<number> {
  const config = await loadConfig(configPath(values))
  const grace = values.grace === undefined ? config.gc.graceSeconds : Number(values.grace)
  if (!(grace >= 0)) throw new UsageError(`--grace ${values.grace}: expected seconds`)
  const momPriv = join(values['pbs-home'] ?? config.torque.home, 'mom_priv')
  if (!existsSync(join(momPriv, 'jobs'))) throw new UsageError(`${momPriv}/jobs does not exist: is this pbs_mom's PBS_HOME? (--pbs-home)`)
  const engine = openEngine(config.engine)
  const unlabelled = (c: JobContainer) => process.stdout.write(`${printable(`left alone ${c.name} (job ${c.labels[LABEL.job]}, ${c.state}): `
    + `no ${LABEL.mom} label says which pbs_mom made it (an older cbatch's); remove it by hand once its job is gone`)}\n`)
  const removed = await collectOrphans(engine, { momPriv, graceSeconds: grace, dryRun: values['dry-run'], onUnlabelled: unlabelled })
  for (const c of removed) process.stdout.write(`${printable(`${values['dry-run'] ? 'would remove' : 'removed'} ${c.name} (job ${c.labels[LABEL.job]}, ${c.state})`)}\n`)
  return 0
}

/** The built hooks: beside this program (dist/), or one level up (mom_priv/cbatch.d/). */
function hooksDir(): string {
  const here = dirname(process.argv[1])
  return existsSync(join(here, 'prologue')) ? here : dirname(here)
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
