// cbatch: the command-line face of the package.
//   cbatch run SCRIPT ...   runs one job the way pbs_mom would on this node (emulator/emulator.ts)
//   cbatch gc ...           removes containers of jobs this pbs_mom no longer knows (lib/job/gc.ts)
//   cbatch images ...       the node's image cache (bin/images.ts)
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { DEFAULT_CONFIG_PATH, loadConfig } from '../lib/policy/config.ts'
import { Engine } from '../lib/engine/engine.ts'
import { DEFAULT_PBS_HOME, emulateJob } from '../emulator/emulator.ts'
import { startSisters } from '../emulator/engines.ts'
import { EMULATOR_TOOLS } from '../emulator/tm.ts'
import { LABEL } from '../lib/engine/container.ts'
import { CbatchError, UsageError } from '../lib/errors.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { images } from './images.ts'

const USAGE = `usage: cbatch run SCRIPT [script args] [options]
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
  --keep              keep the job's files in PBS_HOME for inspection
       cbatch images [list | prune | pull] [options]   (safe to run from cron)
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --json              list: as JSON
  --dry-run           prune: only list what would be removed to stay under images.budget
  --queue QUEUE       pull: only this queue's image (default: every queue's)
       cbatch gc [options]   (safe to run from cron)
  --config FILE       cbatch.yaml (default: ${DEFAULT_CONFIG_PATH})
  --pbs-home DIR      PBS_HOME of this node's pbs_mom (default: torque.home of the config)
  --grace SECONDS     leave containers younger than this (default: gc.graceSeconds)
  --dry-run           only list what would be removed`

const options = {
  user: { type: 'string' }, queue: { type: 'string' },
  resources: { type: 'string', default: 'nodes=1:ppn=1' }, config: { type: 'string' }, task: { type: 'string', multiple: true }, workdir: { type: 'string' },
  'array-index': { type: 'string' }, attempts: { type: 'string' }, nodes: { type: 'string' }, 'torque-cgroups': { type: 'string' }, join: { type: 'boolean' },
  var: { type: 'string', short: 'v', multiple: true }, json: { type: 'boolean' },
  keep: { type: 'boolean' }, 'pbs-home': { type: 'string' }, grace: { type: 'string' },
  'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
} as const

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({ args: argv, allowPositionals: true, options })
  const [command, ...rest] = positionals
  if (values.help || !['run', 'gc', 'images'].includes(command) || (command === 'run' && !rest.length)) {
    process.stderr.write(`${USAGE}\n`)
    return values.help ? 0 : USAGE_ERROR
  }
  if (process.getuid?.() !== 0) throw new UsageError(`cbatch ${command} must run as root, like pbs_mom`)
  if (command === 'images') {
    const config = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH)
    return images(rest[0], config, Engine.fromConfig(config.engine), { json: values.json, dryRun: values['dry-run'], queue: values.queue })
  }
  return command === 'run' ? run(rest, values) : gc(values)
}

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values']

async function run([script, ...scriptArgs]: string[], values: Values): Promise<number> {
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
  const sisters = nodes > 1 ? await startSisters(nodes - 1, resolve(values.config ?? DEFAULT_CONFIG_PATH)) : undefined
  const job = await emulateJob({
    sisters: sisters?.sisters,
    script: resolve(script), scriptArgs, user, queue: values.queue ?? 'batch', resources: values.resources!,
    config: values.config && resolve(values.config), variables, hooksDir: hooksDir(),
    tasks: (values.task ?? []).map(task => task.split(' ').filter(Boolean)),
    workDir: values.workdir,
    arrayIndex: values['array-index'] === undefined ? undefined : whole(values['array-index'], '--array-index'),
    attempts: values.attempts === undefined ? undefined : whole(values.attempts, '--attempts'),
    join: values.join,
    cgroups: values['torque-cgroups'] === undefined ? undefined : { cpus: values['torque-cgroups'] },
    cancel: cancel.signal, keep: values.keep, pbsHome: values['pbs-home'] && resolve(values['pbs-home']),
  }).finally(() => sisters?.dispose())
  if (values.json) {
    process.stdout.write(`${JSON.stringify(job)}\n`)
  } else {
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
  const config = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH)
  const grace = values.grace === undefined ? config.gc.graceSeconds : Number(values.grace)
  if (!(grace >= 0)) throw new UsageError(`--grace ${values.grace}: expected seconds`)
  const momPriv = join(values['pbs-home'] ?? config.torque.home, 'mom_priv')
  if (!existsSync(join(momPriv, 'jobs'))) throw new UsageError(`${momPriv}/jobs does not exist: is this pbs_mom's PBS_HOME? (--pbs-home)`)
  const engine = Engine.fromConfig(config.engine)
  const removed = await collectOrphans(engine, { momPriv, graceSeconds: grace, dryRun: values['dry-run'] })
  for (const c of removed) process.stdout.write(`${values['dry-run'] ? 'would remove' : 'removed'} ${c.name} (job ${c.labels[LABEL.job]}, ${c.state})\n`)
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
  process.stderr.write(`cbatch: ${err instanceof CbatchError ? err.userMessage : (err as Error).message}\n`)
  // parseArgs says so of an unknown or malformed option.
  const usage = err instanceof UsageError || String((err as { code?: string }).code).startsWith('ERR_PARSE_ARGS')
  exitWhenWritten(usage ? USAGE_ERROR : FAILED)
})
