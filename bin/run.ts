// cbatch run: one job the way pbs_mom would run it on this node (emulator/emulator.ts).
import { existsSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { DEFAULT_PBS_HOME, emulateJob } from '../emulator/emulator.ts'
import { startSisters } from '../emulator/engines.ts'
import { EMULATOR_TOOLS } from '../emulator/tm.ts'
import { ConfigError, UsageError } from '../lib/errors.ts'
import { parseResourceList, parseSize, SIZE_PATTERN } from '../lib/torque/contract.ts'
import { loadConfig } from '../lib/policy/config.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { CONFIG, configPath } from './options.ts'

const RUN_OPTIONS = {
  user: { type: 'string', value: 'USER', complete: 'user', help: 'job owner (default: $SUDO_USER)' },
  queue: { type: 'string', value: 'QUEUE', help: 'queue (default: batch), one the config names' },
  'native-queue': { type: 'boolean', help: 'the queue is one cbatch does not manage: run the job natively, as pbs_mom runs such a queue' },
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

export const runCommand = defineCommand({
  name: 'run', summary: 'run one job the way pbs_mom would on this node (the pbs_mom emulator)',
  synopsis: 'SCRIPT [script args] [options]',
  description: `Runs SCRIPT as a job of --user: the installed hooks (prologue, job starter, epilogue) run
 real processes, as pbs_mom would run them, against this node's engine and the config.
e job's output and error are printed when it ends (--follow: as they come).`,
  options: RUN_OPTIONS, positionals: 'file', rootOnly: true,
  exits: 'the job\'s own (128+N when killed by signal N; 125 also when its prologue refused or requeued it)',
  examples: [
    'cbatch run job.sh --user alice --resources nodes=1:ppn=2,mem=1gb',
    'cbatch run mpi.sh --user alice --queue mpi --nodes 3 --resources nodes=3:ppn=2',
  ],
  run: runJob,
})

async function runJob([script, ...scriptArgs]: string[], values: OptionValues<typeof RUN_OPTIONS>): Promise<number> {
  if (values.follow && values.json) throw new UsageError('cbatch run: --follow prints the output as it comes, --json the record at the end: one or the other')
  if (!script) throw new UsageError('cbatch run: which job script? (cbatch run --help)')
  const user = values.user ?? process.env.SUDO_USER
  if (!user) throw new UsageError('say which user owns the job: --user USER')
  // Mistakes of the command line are said here, not as a job its prologue refused (125).
  if (!statSync(script, { throwIfNoEntry: false })?.isFile()) throw new UsageError(`cbatch run: no job script ${script}`)
  const resources = values.resources ?? 'nodes=1:ppn=1'
  checkResourceSyntax(resources)
  const variables = Object.fromEntries((values.var ?? []).map(v => {
    const eq = v.indexOf('=')
    if (eq <= 0) throw new UsageError(`-v ${v}: expected VAR=value`)
    return [v.slice(0, eq), v.slice(eq + 1)]
  }))
  const cancel = new AbortController()
  // Ctrl-C or kill of `cbatch run` is a qdel of the job.
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => cancel.abort())
  // pbs_mom runs a job of a queue the config does not name natively: here that is a typo, not
  // a choice. A config that does not load is left to the prologue, which refuses the job as on a node.
  const queue = values.queue ?? 'batch'
  const config = await loadConfig(configPath(values)).catch(err => {
    if (err instanceof ConfigError) return undefined
    throw err
  })
  if (config && !config.queues.has(queue) && !values['native-queue']) {
    throw new UsageError(`--queue ${queue}: not a queue of ${config.file} (${[...config.queues.keys()].join(', ') || 'it has none'}); --native-queue runs it natively, as pbs_mom would`)
  }
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

/** The built hooks: beside this program (dist/), or one level up (mom_priv/cbatch.d/). */
function hooksDir(): string {
  const here = dirname(process.argv[1])
  return existsSync(join(here, 'prologue')) ? here : dirname(here)
}

const SIZE_KEYS = ['mem', 'pmem', 'vmem', 'pvmem', 'file']

/**
 * What qsub itself refuses: a malformed Resource_List or size. Values qsub takes (mem=0b,
 * ppn=99999999) reach pbs_mom and are judged by the prologue: here too, since that is what
 * `cbatch run` tries out.
 */
function checkResourceSyntax(resources: string): void {
  const refuse = (err: unknown, item = '') => {
    if (err instanceof UsageError) return new UsageError(`cbatch run: --resources: ${item}${err.userMessage}`)
    return err
  }
  let list: Map<string, string>
  try {
    list = parseResourceList(resources)
  } catch (err) {
    throw refuse(err)
  }
  for (const [name, value] of list) {
    if (!SIZE_KEYS.includes(name) || new RegExp(SIZE_PATTERN).test(value.trim())) continue
    try {
      parseSize(value)
    } catch (err) {
      throw refuse(err, `${name}=${value}: `)
    }
  }
}
