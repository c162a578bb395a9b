// What pbs_mom hands our programs: argv of the prologue and epilogue families,
// the job starter's environment, and the Resource_List string.
// See docs/torque-contract.md ("Arguments", "The job starter").
import { UsageError, type Disposition } from '../errors.ts'

/**
 * What each of cbatch's programs exits with when cbatch itself cannot run at all (an
 * install root may not trust: a fault of the node, not of the job), as pbs_mom reads each
 * (docs/torque-contract.md, "Prologue exit codes", "A sister's prologue.parallel exits
 * non-zero", "Exit status"):
 * - prologue: 2, the job is requeued (1 would abort it, 0 run it where nothing was prepared);
 * - prologue.parallel: 2, the job is requeued and pbs_server marks this node down, as it should;
 * - epilogue, epilogue.parallel: 2, only logged;
 * - jobstarter: 125, "cbatch did not run the job" (any other value reads as the job's own);
 * - nodecheck: 1, with an `ERROR` line on stdout, which marks the node down;
 * - puller: 2, read by no one (the prologue waits for what the pull records).
 * - remover: 2, read by no one (`cbatch gc` removes what it could not).
 */
export const CANNOT_RUN_EXIT = {
  prologue: 2,
  'prologue.parallel': 2,
  epilogue: 2,
  'epilogue.parallel': 2,
  jobstarter: 125,
  nodecheck: 1,
  puller: 2,
  remover: 2,
} as const

export type ProgramName = keyof typeof CANNOT_RUN_EXIT

/** What a hook exits with when it fails: by the failure's disposition, or for an internal error. */
export type FailureExits = Record<Disposition | 'internal', number>

/**
 * How each hook pbs_mom runs says it failed, as pbs_mom reads it:
 * - prologue, prologue.parallel: a job refused (`abort`) exits 0, its reason in its .ER and
 *   recorded for its starters, which will not run it (with exit 1 pbs_mom would deliver no
 *   output, only "Job cannot be executed"); what may pass exits 2, and the job is requeued;
 * - epilogue, epilogue.parallel: pbs_mom only logs the status;
 * - jobstarter: 125 whatever the failure: "cbatch did not run the job";
 * - nodecheck: 1, which with its `ERROR` line marks the node down.
 */
export const FAILURE_EXITS: Record<Exclude<ProgramName, 'puller' | 'remover'>, FailureExits> = {
  prologue: { abort: 0, requeue: 2, internal: CANNOT_RUN_EXIT.prologue },
  'prologue.parallel': { abort: 0, requeue: 2, internal: CANNOT_RUN_EXIT['prologue.parallel'] },
  epilogue: { abort: 1, requeue: 2, internal: CANNOT_RUN_EXIT.epilogue },
  'epilogue.parallel': { abort: 1, requeue: 2, internal: CANNOT_RUN_EXIT['epilogue.parallel'] },
  jobstarter: { abort: CANNOT_RUN_EXIT.jobstarter, requeue: CANNOT_RUN_EXIT.jobstarter, internal: CANNOT_RUN_EXIT.jobstarter },
  nodecheck: { abort: CANNOT_RUN_EXIT.nodecheck, requeue: CANNOT_RUN_EXIT.nodecheck, internal: CANNOT_RUN_EXIT.nodecheck },
}

export interface JobFacts {
  jobId: string
  user: string
  group: string
  jobName: string
  resources: string
  queue: string
  account: string
  /** `<mom_priv>/jobs/<jobid>.SC`; absent from TORQUE 4.x/5.x. */
  scriptPath?: string
}

export interface EpilogueFacts extends JobFacts {
  sessionId: string
  resourcesUsed: string
  exitStatus: number
}

/** argv after the program name: 8 values from TORQUE 6, 7 from 4.x/5.x. */
export function parsePrologueArgs(args: string[]): JobFacts {
  if (args.length !== 7 && args.length !== 8) {
    throw new UsageError(`prologue expects the 7 or 8 arguments pbs_mom passes, got ${args.length}`)
  }
  const [jobId, user, group, jobName, resources, queue, account, scriptPath] = args
  return checked({ jobId, user, group, jobName, resources, queue, account, scriptPath: scriptPath || undefined })
}

/** argv after the program name: 11 values from TORQUE 6, 10 from 4.x/5.x. */
export function parseEpilogueArgs(args: string[]): EpilogueFacts {
  if (args.length !== 10 && args.length !== 11) {
    throw new UsageError(`epilogue expects the 10 or 11 arguments pbs_mom passes, got ${args.length}`)
  }
  const [jobId, user, group, jobName, sessionId, resources, resourcesUsed, queue, account, exit, scriptPath] = args
  if (!/^-?\d+$/.test(exit)) throw new UsageError(`epilogue: exit status ${JSON.stringify(exit)} is not a number`)
  return {
    ...checked({ jobId, user, group, jobName, resources, queue, account, scriptPath: scriptPath || undefined }),
    sessionId, resourcesUsed, exitStatus: Number(exit),
  }
}

function checked<T extends JobFacts>(facts: T): T {
  if (!facts.jobId) throw new UsageError('empty job id')
  if (!facts.user) throw new UsageError('empty job owner')
  if (facts.scriptPath !== undefined && !facts.scriptPath.startsWith('/')) {
    throw new UsageError(`job script path ${JSON.stringify(facts.scriptPath)} is not absolute`)
  }
  return facts
}

/**
 * What the job starter is told by its environment. It is the job's environment: pbs_mom's
 * own values override the job's for the job shell, but a TM task (pbsdsh, mpiexec) carries
 * no USER of mom's, so a task's USER is whatever `qsub -v` said. These are claims, checked
 * against what root wrote (the job's .JB, its container's labels); never settings.
 */
export interface StarterFacts {
  /** PBS_JOBID: a claim, held only with the job's cookie (jobfile.ts readClaimedJob). */
  jobId: string
  /** PBS_JOBCOOKIE: the job's secret, as pbs_mom gave it to the job shell and its tasks. */
  cookie?: string
  /** PBS_TASKNUM: 1 for the job shell, 2, 3, … for TM tasks. */
  task: number
  /** PBS_QUEUE, as pbs_mom set it. */
  queue?: string
  /** USER, for the job shell only: pbs_mom sets it there. */
  user?: string
  home: string
  /** cwd of the job shell or task: PBS_O_INITDIR (qsub -d), else HOME. */
  workDir: string
}

export function starterFacts(env: NodeJS.ProcessEnv = process.env): StarterFacts {
  const need = (name: string) => {
    const value = env[name]
    if (!value) throw new UsageError(`job starter: ${name} is not set; it must be run by pbs_mom as $job_starter`)
    return value
  }
  const home = need('HOME')
  const taskNumber = env.PBS_TASKNUM ?? '1'
  if (!/^[1-9]\d{0,8}$/.test(taskNumber)) throw new UsageError(`job starter: PBS_TASKNUM=${JSON.stringify(taskNumber)} is not a task number`)
  const task = Number(taskNumber)
  return {
    jobId: need('PBS_JOBID'),
    cookie: env.PBS_JOBCOOKIE,
    task,
    queue: env.PBS_QUEUE,
    user: task === 1 ? need('USER') : undefined,
    home,
    workDir: env.PBS_O_INITDIR || home,
  }
}

/** Resource_List, e.g. `nodes=1:ppn=2,mem=4gb,walltime=01:00:00`, as name -> value (order kept). */
export function parseResourceList(list: string): Map<string, string> {
  const resources = new Map<string, string>()
  for (const item of list.split(',')) {
    if (!item) continue
    const eq = item.indexOf('=')
    if (eq <= 0) throw new UsageError(`Resource_List item ${JSON.stringify(item)} is not name=value`)
    resources.set(item.slice(0, eq), item.slice(eq + 1))
  }
  return resources
}

/** TORQUE's size grammar: a number, then b, kb, mb, gb, tb or words w, kw, … (any case). */
export const SIZE_PATTERN = '^(\\d+)(([kKmMgGtT]?)([bBwW]))?$'

const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 }

/**
 * TORQUE size (`4gb`, `512mb`, `100`, `2kw` with 8-byte words) -> bytes. Never 0 (Docker
 * reads a limit of 0 as none) and never beyond what a number holds exactly.
 */
export function parseSize(value: string): number {
  const m = new RegExp(SIZE_PATTERN).exec(value.trim())
  if (!m) throw new UsageError(`size ${JSON.stringify(value)} is not <number>[b|kb|mb|gb|tb|w|kw|mw|gw|tw]`)
  const scale = SIZE_UNITS[`${m[3] ?? ''}b`.toLowerCase()] ?? 1
  const word = m[4]?.toLowerCase() === 'w' ? 8 : 1
  const bytes = Number(m[1]) * scale * word
  if (bytes === 0) throw new UsageError(`size ${JSON.stringify(value)} is 0: a limit of nothing`)
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`size ${JSON.stringify(value)} is too large`)
  return bytes
}

/** Most of anything a job may count (CPUs, nodes, processes): far above any node. */
export const MAX_COUNT = 1_000_000

/** A whole number from 1 to MAX_COUNT (ppn, ncpus, procs, PBS_NUM_PPN). */
export function parseCount(value: string, name: string): number {
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > MAX_COUNT) {
    throw new UsageError(`${name}=${value} is not a whole number from 1 to ${MAX_COUNT}`)
  }
  return Number(value)
}

/** TORQUE time (`HH:MM:SS`, `MM:SS`, or seconds) -> seconds. */
export function parseDuration(value: string): number {
  const m = /^(?:(?:(\d+):)?(\d+):)?(\d+)$/.exec(value.trim())
  if (!m) throw new UsageError(`time ${JSON.stringify(value)} is not HH:MM:SS, MM:SS or seconds`)
  const [h, min, s] = [m[1], m[2], m[3]].map(v => Number(v ?? 0))
  if (m[2] !== undefined && (s >= 60 || (m[1] !== undefined && min >= 60))) {
    throw new UsageError(`time ${JSON.stringify(value)} has minutes or seconds of 60 or more`)
  }
  return h * 3600 + min * 60 + s
}
