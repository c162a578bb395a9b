// cbatch: the command-line face of the package (cbatch --help).
//   cbatch run SCRIPT ...   runs one job the way pbs_mom would on this node (emulator/emulator.ts)
//   cbatch gc ...           removes containers of jobs this pbs_mom no longer knows (lib/job/gc.ts)
//   cbatch images ...       the node's image cache (bin/images.ts)
//   cbatch config ...       checks a config, shows a queue's effective policy
//   cbatch ps ...           the job containers on this node (lib/node/jobs.ts)
//   cbatch doctor ...       what on this node makes jobs fail (lib/node/doctor.ts)
//   cbatch logs JOBID       one job's lines of the node log (lib/log.ts)
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
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
import { diagnose } from '../lib/node/doctor.ts'
import { VERSION } from '../lib/version.ts'
import { jobLines } from '../lib/log.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { images, type ImagesAction } from './images.ts'

/** Each command: its options, its help (with examples), and what it does. */
const COMMANDS = {
  run: {
    summary: 'run one job the way pbs_mom would on this node (the pbs_mom emulator)',
    usage: `cbatch run SCRIPT [script args] [options]
  --user USER         job owner (default: $SUDO_USER)
  --queue QUEUE       queue (default: batch)
  --resources LIST    Resource_List, e.g. nodes=1:ppn=2,mem=1gb,walltime=00:10:00
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  -v, --var VAR=VAL   a job variable, as qsub -v (repeatable)
  --workdir DIR       PBS_O_WORKDIR, where qsub ran (default: the current directory)
  --join              qsub -j oe: the job's stderr into its output file
  --array-index I     run it as sub-job I of an array job (id N[I].host, files N-I.host.*)
  --attempts N        start a job whose prologue requeues it up to N times in a row, as pbs_sched would
  --torque-cgroups C  as pbs_mom built with cgroups: the job's cgroups (cpuset C), made before and removed after
  --task 'CMD ARGS'   a TM task started while the job runs, as pbsdsh would (repeatable; split at spaces)
  --nodes N           run the job on N nodes: this one and N-1 sisters, each with its own
                      engine and PBS_HOME; in the job, ${EMULATOR_TOOLS}/pbsdsh starts tasks
                      on them (the queue needs network: host and that directory as a volume)
  --pbs-home DIR      the emulated PBS_HOME (default: ${DEFAULT_PBS_HOME})
  --json              print the job's record as JSON instead of its output
  --follow            print the job's output and error as they are written, while it runs
  --keep              keep the job's files in PBS_HOME for inspection
examples:
  cbatch run job.sh --user alice --resources nodes=1:ppn=2,mem=1gb
  cbatch run mpi.sh --user alice --queue mpi --nodes 3 --resources nodes=3:ppn=2`,
    options: {
      user: { type: 'string' }, queue: { type: 'string' }, resources: { type: 'string' }, config: { type: 'string' },
      var: { type: 'string', short: 'v', multiple: true }, workdir: { type: 'string' }, join: { type: 'boolean' },
      'array-index': { type: 'string' }, attempts: { type: 'string' }, 'torque-cgroups': { type: 'string' },
      task: { type: 'string', multiple: true }, nodes: { type: 'string' }, 'pbs-home': { type: 'string' },
      json: { type: 'boolean' }, keep: { type: 'boolean' }, follow: { type: 'boolean' },
    },
  },
  gc: {
    summary: 'remove containers (and cbatch\'s files) of jobs this pbs_mom no longer knows, never another mom\'s; safe from cron',
    usage: `cbatch gc [options]
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --pbs-home DIR      PBS_HOME of this node's pbs_mom (default: torque.home of the config)
  --grace SECONDS     leave containers younger than this (default: gc.graceSeconds)
  --dry-run           only list what would be removed
examples:
  cbatch gc --dry-run
  */15 * * * * /var/spool/torque/mom_priv/cbatch.d/cbatch gc     (crontab)`,
    options: { config: { type: 'string' }, 'pbs-home': { type: 'string' }, grace: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  },
  images: {
    summary: 'the node\'s images: list, pre-pull, prune under a budget; safe from cron',
    usage: `cbatch images [list | pull | prune] [options]
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --json              list: as JSON
  --queue QUEUE       pull: only this queue's image (default: every queue's)
  --dry-run           prune: only list what would be removed to stay under images.budget
examples:
  cbatch images
  cbatch images pull --queue mpi
  cbatch images prune --dry-run`,
    options: { config: { type: 'string' }, json: { type: 'boolean' }, queue: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  },
  config: {
    summary: 'check a config file, or show a queue\'s policy once defaults are merged',
    usage: `cbatch config check [FILE]            every problem, as FILE:LINE:COLUMN: dot.path: message;
                                     also each file and directory of it root would rely on
                                     that others could change or make first
cbatch config show [--queue QUEUE]   the effective policy (JSON), of every queue or one
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
examples:
  cbatch config check /etc/cbatch/cbatch.yaml.new && mv /etc/cbatch/cbatch.yaml.new /etc/cbatch/cbatch.yaml
  cbatch config show --queue batch`,
    options: { config: { type: 'string' }, queue: { type: 'string' } },
  },
  doctor: {
    summary: 'check everything on this node that makes jobs fail or run unconfined, with the fix',
    usage: `cbatch doctor [options]    (exit 0: no FAIL; 1: at least one)
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --pbs-home DIR      PBS_HOME of this node's pbs_mom (default: torque.home of the config)
  --json              as JSON
examples:
  cbatch doctor
  pdsh -w node[01-64] cbatch doctor | grep -v ' ok '`,
    options: { config: { type: 'string' }, 'pbs-home': { type: 'string' }, json: { type: 'boolean' } },
  },
  logs: {
    summary: 'one job\'s lines of the node log, across its hooks (prologue, starter, tasks, epilogue)',
    usage: `cbatch logs JOBID [options]
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH}); the log is its log.file
  --json              the lines as they are (JSON, one a line)
examples:
  cbatch logs 1234.head
  cbatch logs 1234.head --json | jq 'select(.calls) | {hook, ms, engineMs}'`,
    options: { config: { type: 'string' }, json: { type: 'boolean' } },
  },
  ps: {
    summary: 'the job containers on this node: job, owner, queue, image, state, age, CPU and memory now, their pbs_mom',
    usage: `cbatch ps [options]
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --pbs-home DIR      PBS_HOME of this node's pbs_mom (default: torque.home of the config)
  --json              as JSON
examples:
  cbatch ps
  cbatch ps --json | jq '.[] | select(.knownToMom == false)'`,
    options: { config: { type: 'string' }, 'pbs-home': { type: 'string' }, json: { type: 'boolean' } },
  },
} as const

type Command = keyof typeof COMMANDS

const OVERVIEW = `usage: cbatch COMMAND [options]       (cbatch COMMAND --help for its options and examples)
${Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`).join('\n')}
  --version           the version of cbatch`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === '--version') {
    process.stdout.write(`cbatch ${VERSION}\n`)
    return 0
  }
  if (command === undefined) {
    process.stderr.write(`${OVERVIEW}\n`)
    return USAGE_ERROR
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${OVERVIEW}\n`)
    return 0
  }
  if (!(command in COMMANDS)) throw new UsageError(`unknown command ${JSON.stringify(command)}: see cbatch --help`)
  const spec = COMMANDS[command as Command]
  const { positionals, values } = parseArgs({ args: rest, allowPositionals: true, options: { ...spec.options, help: { type: 'boolean', short: 'h' } } })
  if (values.help) {
    process.stdout.write(`usage: ${spec.usage}\n`)
    return 0
  }
  if (command === 'config') return configCommand(positionals, values as Values)
  if (process.getuid?.() !== 0) throw new UsageError(`cbatch ${command} must run as root, like pbs_mom`)
  const v = values as Values
  if (command === 'run') {
    if (!positionals.length) throw new UsageError('cbatch run: which job script? (cbatch run --help)')
    return run(positionals, v)
  }
  if (command === 'ps') return ps(v)
  if (command === 'doctor') return doctor(v)
  if (command === 'logs') return logs(positionals, v)
  const action = positionals[0] ?? 'list'
  if (command === 'images' && !['list', 'pull', 'prune'].includes(action)) {
    throw new UsageError(`cbatch images ${action}: expected list, pull or prune`)
  }
  const config = await loadConfig(configPath(v))
  if (command === 'images') {
    return images(action as ImagesAction, config, openEngine(config.engine), { json: v.json, dryRun: v['dry-run'], queue: v.queue })
  }
  return gc(v)
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

/** What any command's options may hold (each command parses only its own). */
interface Values {
  user?: string; queue?: string; resources?: string; config?: string; var?: string[]; workdir?: string; join?: boolean
  'array-index'?: string; attempts?: string; 'torque-cgroups'?: string; task?: string[]; nodes?: string; 'pbs-home'?: string
  json?: boolean; keep?: boolean; grace?: string; 'dry-run'?: boolean; follow?: boolean
}

/**
 * `config check [FILE]`: 0 when valid, 1 with every problem, the paths this node could not
 * safely obey among them; `config show`: the effective policy.
 */
async function configCommand([action, file, ...extra]: string[], values: Values): Promise<number> {
  if (extra.length) throw new UsageError(`cbatch config ${action}: unexpected ${extra.join(' ')}`)
  if (action === 'check') {
    const path = file ?? configPath(values)
    try {
      const config = await loadConfig(path)
      const unsafe = checkHostPaths(config)
      if (unsafe.length) throw new ConfigError(config.file, unsafe)
      process.stdout.write(`${printable(`${config.file}: valid, queues ${[...config.queues.keys()].join(', ') || '(none: every job runs natively)'}`)}\n`)
      return 0
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      for (const issue of err.issues) process.stdout.write(`${printable(describeIssue(err.file, issue))}\n`)
      return 1
    }
  }
  if (action === 'show') {
    if (file) throw new UsageError(`cbatch config show: name the file with --config, not ${file}`)
    const config = await loadConfig(configPath(values))
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

async function logs([jobId, ...extra]: string[], values: Values): Promise<number> {
  if (!jobId || extra.length) throw new UsageError('cbatch logs: one job id, e.g. cbatch logs 1234.head')
  const config = await loadConfig(configPath(values))
  if (!config.log.file) throw new UsageError(`${config.file} keeps no node log (log.file is "")`)
  let text: string
  try {
    text = readFileSync(config.log.file, 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read the node log ${config.log.file}: ${(err as NodeJS.ErrnoException).code ?? err}`)
  }
  // Lines quote what jobs asked for: printed with their terminal escapes made visible.
  for (const line of jobLines(text, jobId)) {
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

async function doctor(values: Values): Promise<number> {
  const findings = await diagnose({
    configPath: configPath(values), pbsHome: values['pbs-home'], engineFor: config => openEngine(config.engine),
  })
  if (values.json) process.stdout.write(`${printableJson(findings)}\n`)
  else for (const f of findings) process.stdout.write(`${printable(`${f.verdict.padEnd(4)} ${f.what}: ${f.detail}${f.fix ? ` -> ${f.fix}` : ''}`)}\n`)
  return findings.some(f => f.verdict === 'FAIL') ? 1 : 0
}

async function ps(values: Values): Promise<number> {
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

async function run([script, ...scriptArgs]: string[], values: Values): Promise<number> {
  if (values.follow && values.json) throw new UsageError('cbatch run: --follow prints the output as it comes, --json the record at the end: one or the other')
  const user = values.user ?? process.env.SUDO_USER
  if (!user) throw new UsageError('say which user owns the job: --user USER')
  const variables = Object.fromEntries((values.var ?? []).map(v => {
    const eq = v.indexOf('=')
    if (eq <= 0) throw new UsageError(`-v ${v}: expected VAR=value`)
    return [v.slice(0, eq), v.slice(eq + 1)]
  }))
  const cancel = new AbortController()
  // Ctrl-C or kill of `cbatch run` is a qdel of the job.
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => cancel.abort())
  const nodes = values.nodes === undefined ? 1 : whole(values.nodes, '--nodes')
  if (nodes < 1 || nodes > 16) throw new UsageError(`--nodes ${values.nodes}: from 1 to 16`)
  const sisters = nodes > 1 ? await startSisters(nodes - 1, resolve(configPath(values))) : undefined
  const job = await emulateJob({
    sisters: sisters?.sisters,
    script: resolve(script), scriptArgs, user, queue: values.queue ?? 'batch', resources: values.resources ?? 'nodes=1:ppn=1',
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

async function gc(values: Values): Promise<number> {
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
  process.stderr.write(`cbatch: ${printable(err instanceof CbatchError ? err.userMessage : (err as Error).message)}\n`)
  // parseArgs says so of an unknown or malformed option.
  const usage = err instanceof UsageError || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS')
  exitWhenWritten(usage ? USAGE_ERROR : FAILED)
})
