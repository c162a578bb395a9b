// An emulator of pbs_mom for one job on this node, written to docs/torque-contract.md:
// the prologue, job starter and epilogue run as real processes with the argv, environment,
// stdin, stdout/stderr, cwd, permission check, time limits and kill sequence pbs_mom uses.
// It is how `cbatch run` tries cbatch without TORQUE, and the engine of the integration tests.
// This module is pbs_mom's sequence for a job; what each step does is in the modules beside it.
import { randomBytes } from 'node:crypto'
import { rmSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { UsageError } from '../lib/errors.ts'
import { formatDuration } from '../lib/format.ts'
import { readFileAsOwner } from '../lib/host/asowner.ts'
import { lookupUser, type Identity } from '../lib/host/identity.ts'
import { signalSession } from '../lib/host/proc.ts'
import { parseDuration, parseResourceList } from '../lib/torque/contract.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'
import type { SisterNode } from './engines.ts'
import { makeJobCgroups, momLimits, type JobCgroups } from './limits.ts'
import { MAX_RECORDED_OUTPUT, readOutput, tail } from './output.ts'
import { createFile, DEFAULT_PBS_HOME, hooksFor, jobFileOf, momDirs, writeJobFile, type EmulatedJobFile } from './pbshome.ts'
import { placeJob } from './placement.ts'
import { ROOT_ENV, runScript, runStarter, runTask, type HookRun } from './processes.ts'
import { installPbsdsh, startTaskManager } from './tm.ts'

// What `cbatch run` and the tests name here, wherever it is kept.
export { DEFAULT_PBS_HOME, hooksFor, writeJobFile } from './pbshome.ts'

export interface EmulatorOptions {
  /** The job script on the host; copied to `mom_priv/jobs/<jobid>.SC`. */
  script: string
  user: string
  queue: string
  /** Resource_List, e.g. `nodes=1:ppn=1,walltime=00:10:00`. */
  resources: string
  /** Directory holding the built hooks: prologue, jobstarter, epilogue, and their cbatch.d/. */
  hooksDir: string
  /** The config the hooks read instead of the one their wrappers name (as install.sh --config-dir). */
  config?: string
  /** qsub -v: variables of the job. */
  variables?: Record<string, string>
  /** qsub -F: arguments of the job script. */
  scriptArgs?: string[]
  /** PBS_O_WORKDIR: where qsub ran. */
  workDir?: string
  jobName?: string
  /** $prologalarm, seconds. */
  prologAlarm?: number
  /** Seconds between SIGTERM and SIGKILL on qdel or walltime. */
  killDelay?: number
  /** Ends the job as qdel would when aborted. */
  cancel?: AbortSignal
  /** pbs_mom's own environment (pbs_environment); PATH and LANG by default. */
  momEnv?: NodeJS.ProcessEnv
  /** PBS_HOME shared by the jobs this node runs (default: DEFAULT_PBS_HOME). */
  pbsHome?: string
  /** Keep the job's files in PBS_HOME after it ends. */
  keep?: boolean
  /** qsub -j oe: stderr into the output file. */
  join?: boolean
  /** Make the job sub-job `i` of an array: id `N[i].host`, files `N-i.host.*`. */
  arrayIndex?: number
  /** Times pbs_mom runs a job whose prologue requeues it, back to back (pbs_sched's loop); 1 by default. */
  attempts?: number
  /**
   * pbs_mom (and pbs_server) built with cgroups: the job's cgroups are made before the
   * prologue, the prologue and starter run in them, `mem` limits them, and pbs_mom removes
   * its own controllers' directories after the epilogue. `cpus`: the job's cpuset.
   */
  cgroups?: { cpus: string }
  /** TM tasks, as pbsdsh would start them while the job shell runs: each argv through the starter. */
  tasks?: string[][]
  /**
   * Sister nodes (emulator/engines.ts): the job runs on these too, as `nodes=1+N`. Each runs
   * prologue.parallel first, then TM tasks (pbsdsh) through its own starter, then
   * epilogue.parallel once the job shell ended.
   */
  sisters?: Pick<SisterNode, 'pbsHome' | 'config'>[]
  /**
   * The node's GPUs pbs_mom allocates to a job that asks for `gpus=N` (its gpu file and
   * CUDA_VISIBLE_DEVICES); the first N indices by default.
   */
  gpus?: number[]
  /** Copies the job's .OU and .ER here as they grow, while it runs (`cbatch run --follow`). */
  follow?: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }
  /** qsub -I: the job shell gets a terminal; `input` is what is typed at it, `command` is qsub -x. */
  interactive?: { input: string; command?: string }
}


export interface EmulatedJob {
  jobId: string
  prologue: HookRun
  /** What pbs_mom does after the prologue. */
  outcome: 'ran' | 'aborted' | 'requeued'
  /** The job's exit status (starter's), undefined when it never ran. */
  exitStatus?: number
  /** How many times the job was started (requeued ones included). */
  attempts?: number
  /** With `cgroups`: directories left under /sys/fs/cgroup/<controller>/torque/<jobid>. */
  cgroupLeftovers?: string[]
  /** Exit statuses of the TM tasks, in order. */
  taskStatuses?: number[]
  /** Tasks the job started with pbsdsh, as they ended: task number, node, argv, exit status. */
  tmTasks?: { task: number; node: number; argv: string[]; status: number }[]
  /** prologue.parallel and epilogue.parallel of each sister, in node order. */
  sisterPrologues?: HookRun[]
  sisterEpilogues?: HookRun[]
  /** How long the job starter ran, milliseconds. */
  starterMs?: number
  epilogue?: HookRun
  stdout: string
  stderr: string
  pbsHome: string
}

let sequence = 0
/** The emulator's pbsdsh (emulator/tm.ts), written once per process. */
let pbsdshInstalled: string | undefined

export async function emulateJob(opts: EmulatorOptions): Promise<EmulatedJob> {
  const owner = await lookupUser(opts.user)
  const group = (await execa('/usr/bin/id', ['-gn', '--', opts.user], { env: ROOT_ENV, extendEnv: false })).stdout.trim()
  const index = opts.arrayIndex === undefined ? '' : `[${opts.arrayIndex}]`
  const jobId = `${process.pid}${String(++sequence).padStart(2, '0')}${index}.${hostname()}`
  const pbsHome = opts.pbsHome ?? DEFAULT_PBS_HOME
  // Before anything is made or removed there.
  momDirs(pbsHome)
  for (const sister of opts.sisters ?? []) momDirs(sister.pbsHome)
  pbsdshInstalled ??= installPbsdsh()
  try {
    // pbs_sched sends a requeued job straight back to this node (contract): again and again.
    for (let attempt = 1; ; attempt++) {
      const prefix = jobFilePrefix(jobId)
      const tails = opts.follow && [
        tail(join(pbsHome, 'spool', `${prefix}.OU`), opts.follow.out),
        ...(opts.join ? [] : [tail(join(pbsHome, 'spool', `${prefix}.ER`), opts.follow.err)]),
      ]
      // What the job shell wrote is all printed before the epilogue runs (and adds its line).
      const caughtUp = tails ? () => Promise.all(tails.map(t => t.caughtUp())) : undefined
      const result = await runJob(opts, { owner, group, jobId, pbsHome }, caughtUp).finally(() => tails && Promise.all(tails.map(t => t.stop())))
      if (result.outcome !== 'requeued' || attempt >= (opts.attempts ?? 1)) return { ...result, attempts: attempt }
    }
  } finally {
    if (!opts.keep) forgetJob(opts, { jobId, pbsHome })
  }
}

/** pbs_mom forgets the job: its files go, and with them the job's .JB, on every node. */
function forgetJob(opts: EmulatorOptions, { jobId, pbsHome }: { jobId: string; pbsHome: string }): void {
  const prefix = jobFilePrefix(jobId)
  for (const f of ['mom_priv/jobs/%.SC', 'mom_priv/jobs/%.JB', 'spool/%.OU', 'spool/%.ER', 'aux/%', 'aux/%gpu']) {
    const file = join(pbsHome, f.replace('%', prefix))
    // Output the record could not hold whole stays, where readOutput said it is.
    if (!opts.follow && f.startsWith('spool/') && (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > MAX_RECORDED_OUTPUT) continue
    rmSync(file, { force: true })
  }
  for (const sister of opts.sisters ?? []) rmSync(jobFileOf(sister.pbsHome, jobId), { force: true })
}

/** The job as this node's pbs_mom holds it from receiving it: its files, place, hooks and environments. */
interface MomJob {
  opts: EmulatorOptions
  owner: Identity
  group: string
  jobId: string
  pbsHome: string
  /** An array sub-job N[i].host has files N-i.host.* (contract). */
  prefix: string
  scriptPath: string
  outFile: string
  errFile: string
  /** Where the hooks' and job's output goes: qsub -j oe, one file for both. */
  files: { out: string; err: string }
  resources: Map<string, string>
  /** The Resource_List's node spec, as pbs_server passed it. */
  nodes: string
  ppn: number
  nodeCount: number
  walltime?: number
  /** This node's GPUs given to the job. */
  gpus: number[]
  workDir: string
  jobName: string
  /** $prologalarm, seconds. */
  alarm: number
  /** pbs_mom's own environment. */
  momEnv: NodeJS.ProcessEnv
  momNodeFile: string
  /** The job's size as the job shell and its tasks see it. */
  jobSizes: Record<'PBS_NUM_NODES' | 'PBS_NUM_PPN' | 'PBS_NP' | 'PBS_NODEFILE', string>
  /** The mother superior's prologue and epilogue environment. */
  scriptEnv: NodeJS.ProcessEnv
  /** The job's secret, in its job file and given to the job shell and every task (PBS_JOBCOOKIE). */
  cookie: string
  record: EmulatedJobFile
  /** The mother superior's installed hooks. */
  hooks: string
  /** Each sister's PBS_HOME, installed hooks and (never written) job script. */
  sisters: { pbsHome: string; hooks: string; script: string }[]
  cgroups?: JobCgroups
}

/**
 * One start of the job on this node (and its sisters), in pbs_mom's order: what emulateJob
 * repeats while the prologue requeues it.
 */
async function runJob(opts: EmulatorOptions, who: { owner: Identity; group: string; jobId: string; pbsHome: string },
  afterJobShell?: () => Promise<unknown>): Promise<EmulatedJob> {
  const job = await receiveJob(opts, who)
  const sisterPrologues = await runSisterPrologues(job)
  if (sisterPrologues.some(p => p.status !== 0)) return requeueForSister(job, sisterPrologues)
  const prologue = await runPrologue(job)
  // An interactive job has nobody to wait for it: any failure aborts it.
  const outcome = prologue.status === 0 ? 'ran' : prologue.status === 1 || opts.interactive ? 'aborted' : 'requeued'
  const { jobId, pbsHome } = job
  const result: EmulatedJob = { jobId, prologue, outcome, stdout: '', stderr: '', pbsHome, ...(job.sisters.length ? { sisterPrologues } : {}) }
  if (outcome === 'ran') {
    const shell = await runJobShell(job)
    await afterJobShell?.()
    Object.assign(result, shell)
    const used = usage(formatDuration(shell.starterMs / 1000))
    if (job.sisters.length) result.sisterEpilogues = await runSisterEpilogues(job, used)
    result.epilogue = await runEpilogue(job, { used, exitStatus: shell.exitStatus })
  } else {
    // The mother superior's prologue failed: mom aborts the sisters' part of the job without
    // epilogue.parallel, and they forget it (contract, "When a prologue fails").
    job.sisters.forEach(sister => rmSync(jobFileOf(sister.pbsHome, jobId), { force: true }))
  }
  if (job.cgroups) result.cgroupLeftovers = await job.cgroups.remove()
  // After a prologue exit 1, pbs_mom copies no output back to the owner.
  if (outcome !== 'aborted') {
    result.stdout = readOutput(job.outFile)
    result.stderr = readOutput(job.errFile)
  }
  return result
}

/**
 * pbs_mom receives the job: its script and output files, where it is placed (node and gpu
 * files), its cookie and job file record, its cgroups, and the environment of its hooks.
 */
async function receiveJob(opts: EmulatorOptions, { owner, group, jobId, pbsHome }: { owner: Identity; group: string; jobId: string; pbsHome: string }): Promise<MomJob> {
  const prefix = jobFilePrefix(jobId)
  const scriptPath = join(pbsHome, 'mom_priv', 'jobs', `${prefix}.SC`)
  // Interactive jobs have no script, though the prologue is still told of one. The script
  // is read as its owner: a link they made to a file of root's leads nowhere they could not go.
  if (!opts.interactive) {
    const text = await readFileAsOwner(owner, opts.script)
    if (text === undefined) throw new UsageError(`${opts.user} cannot read the job script ${opts.script}`)
    createFile(scriptPath, text, 0o700, owner)
  }
  const outFile = join(pbsHome, 'spool', `${prefix}.OU`)
  const errFile = join(pbsHome, 'spool', `${prefix}.ER`)
  for (const f of [outFile, errFile]) createFile(f, '', 0o600, owner)

  const resources = parseResourceList(opts.resources)
  const nodes = resources.get('nodes') ?? '1'
  // pbs_server accepts requests cbatch refuses (mem=0b, ppn=99999999): mom passes them on.
  const ppn = Number(/(?:^|:)ppn=(\d+)/.exec(resources.get('nodes') ?? '')?.[1] ?? 1)
  const walltime = resources.has('walltime') ? parseDuration(resources.get('walltime')!) : undefined
  const sisters = opts.sisters ?? []
  const nodeCount = 1 + sisters.length
  const nodeNames = [hostname(), ...sisters.map((_, i) => `${hostname()}-sister${i + 1}`)]
  const { chunks, slots, gpus, execHost } = placeJob({ nodeFile: join(pbsHome, 'aux', prefix), nodes, ppn, nodeNames, gpus: opts.gpus })
  const workDir = opts.workDir ?? process.cwd()

  const momEnv: NodeJS.ProcessEnv = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8',
    ...opts.momEnv,
  }
  // As a real mom names it, double slash included (contract).
  const momNodeFile = join(pbsHome, 'aux') + '//' + prefix
  const jobSizes = {
    PBS_NUM_NODES: String(nodeCount), PBS_NUM_PPN: String(ppn), PBS_NP: String(slots.reduce((a, b) => a + b, 0)), PBS_NODEFILE: momNodeFile,
  }
  // A spec that names a host gives the prologues PBS_NUM_NODES=0 and the first chunk's
  // numbers (contract, "Node counts in the environment"); the job shell gets the right ones.
  const hookSizes = chunks?.some(c => c.name) ? { ...jobSizes, PBS_NUM_NODES: '0', PBS_NP: String(ppn) } : jobSizes
  // The prologue's PATH is /bin:/usr/bin; PBS_RESOURCE_GRES only when gres was asked for.
  const scriptEnv: NodeJS.ProcessEnv = {
    ...momEnv, PATH: '/bin:/usr/bin', ...hookSizes,
    PBS_RESOURCE_NODES: nodes, ...(resources.has('gres') ? { PBS_RESOURCE_GRES: resources.get('gres') } : {}),
    PBS_NODENUM: '0', PBS_MSHOST: hostname(), PBS_O_WORKDIR: workDir,
  }
  const hooks = hooksFor(opts.hooksDir, opts.config, pbsHome)

  // The mother superior makes the job's secret and sends it to its sisters.
  const cookie = randomBytes(16).toString('hex').toUpperCase()
  const record = { jobId, queue: opts.queue, owner, group, resources: opts.resources, variables: opts.variables ?? {}, cookie, execHost }
  const cgroups = opts.cgroups ? makeJobCgroups(jobId, resources, opts.cgroups) : undefined
  return {
    opts, owner, group, jobId, pbsHome, prefix, scriptPath, outFile, errFile,
    files: { out: outFile, err: opts.join ? outFile : errFile },
    resources, nodes, ppn, nodeCount, walltime, gpus, workDir,
    jobName: opts.jobName ?? opts.script.split('/').pop()!.slice(0, 15),
    alarm: opts.prologAlarm ?? 300,
    momEnv, momNodeFile, jobSizes, scriptEnv, cookie, record, hooks,
    sisters: sisters.map(sister => ({
      pbsHome: sister.pbsHome,
      hooks: hooksFor(opts.hooksDir, sister.config, sister.pbsHome),
      script: join(sister.pbsHome, 'mom_priv', 'jobs', `${prefix}.SC`),
    })),
    cgroups,
  }
}

/** The prologue family's argv (contract): job, owner, group, name, Resource_List, queue, account, script. */
function prologueArgs(job: MomJob, script: string): string[] {
  return [job.jobId, job.opts.user, job.group, job.jobName, job.opts.resources, job.opts.queue, '', script]
}

/** The epilogue family's argv (contract): job, owner, group, name, session, Resource_List, resources used, queue, account, exit status, script. */
function epilogueArgs(job: MomJob, { used, exitStatus, script }: { used: string; exitStatus: string; script: string }): string[] {
  return [job.jobId, job.opts.user, job.group, job.jobName, '0', job.opts.resources, used, job.opts.queue, '', exitStatus, script]
}

/** The resources_used pbs_mom reports to the epilogues: only the walltime is measured. */
function usage(walltime: string): string {
  return `cput=00:00:00,vmem=0kb,walltime=${walltime},mem=0kb,energy_used=0`
}

/** Where hooks print that print into none of the job's files: sisters' hooks, an interactive job's epilogue. */
const NOTHING = { out: '/dev/null', err: '/dev/null' }

/**
 * Sisters: prologue.parallel first, all of them, before the mother superior's prologue
 * (contract: no script, job file or node file yet; output to /dev/null; no PBS_JOBID).
 * Then each sister saves the job, and from then on has its job file.
 */
async function runSisterPrologues(job: MomJob): Promise<HookRun[]> {
  // The node counts are the prologue's.
  const { scriptEnv } = job
  const runs = await Promise.all(job.sisters.map((sister, i) => {
    const env = {
      ...job.momEnv, PATH: '/bin:/usr/bin', PBS_MSHOST: hostname(), PBS_NODENUM: String(i + 1), PBS_NP: scriptEnv.PBS_NP,
      PBS_NUM_NODES: scriptEnv.PBS_NUM_NODES, PBS_NUM_PPN: scriptEnv.PBS_NUM_PPN, PBS_O_WORKDIR: job.workDir, PBS_RESOURCE_NODES: job.nodes,
    }
    return runScript({ path: join(sister.hooks, 'prologue.parallel'), args: prologueArgs(job, sister.script), env,
      cwd: join(sister.pbsHome, 'mom_priv'), files: NOTHING }, { alarmSeconds: job.alarm })
  }))
  job.sisters.forEach(sister => writeJobFile(sister.pbsHome, job.record))
  return runs
}

/**
 * A sister's failed prologue.parallel never aborts the job: the mother superior runs its
 * epilogue with exit status -3 and the job is requeued (and that node goes down).
 */
async function requeueForSister(job: MomJob, sisterPrologues: HookRun[]): Promise<EmulatedJob> {
  const noUse = usage('00:00:00')
  const sisterEpilogues = await runSisterEpilogues(job, noUse)
  const epilogue = await runScript({ path: join(job.hooks, 'epilogue'), args: epilogueArgs(job, { used: noUse, exitStatus: '-3', script: job.scriptPath }),
    env: job.scriptEnv, cwd: join(job.pbsHome, 'mom_priv'), files: job.files }, { alarmSeconds: job.alarm })
  if (job.cgroups) await job.cgroups.remove()
  return { jobId: job.jobId, prologue: { status: 0, ms: 0 }, outcome: 'requeued', epilogue, sisterPrologues, sisterEpilogues,
    stdout: readOutput(job.outFile), stderr: readOutput(job.errFile), pbsHome: job.pbsHome }
}

/**
 * The mother superior's prologue, in the job's cgroups. pbs_mom writes the job file while it
 * already runs (contract, "When the job file is written": seen ~200 ms in once; later checks
 * never saw it before the prologue returned).
 */
function runPrologue(job: MomJob): Promise<HookRun> {
  return runScript({ path: join(job.hooks, 'prologue'), args: prologueArgs(job, job.scriptPath), env: job.scriptEnv, cwd: join(job.pbsHome, 'mom_priv'),
    files: job.files, inside: job.cgroups?.spawn }, { alarmSeconds: job.alarm, meanwhile: () => writeJobFile(job.pbsHome, job.record) })
}

/**
 * The job shell through the job starter, and the tasks started meanwhile (`tasks`, pbsdsh's);
 * once the shell ended, whatever the job's tasks still run is killed, on every node.
 */
async function runJobShell(job: MomJob) {
  const { opts, owner } = job
  const started = performance.now()
  const tasks = await startTasks(job)
  opts.cancel?.addEventListener('abort', tasks.kill, { once: true })
  const given = Promise.all((opts.tasks ?? []).map((argv, i) => tasks.start(argv, i + 2)))
  // As a real 6.1 mom sends it: no `exec ` (that comes only with $exec_with_exec true).
  const line = `${job.scriptPath}${opts.scriptArgs?.length ? ' ' + opts.scriptArgs.join(' ') : ''}\n`
  const command = opts.interactive?.command
  const env = jobShellEnv(job, tasks.port)
  const exitStatus = await runStarter({ path: join(job.hooks, 'jobstarter'), args: command ? [owner.shell, '-c', command] : [owner.shell],
    env, cwd: env.PBS_O_INITDIR || owner.home, files: job.files, inside: job.cgroups?.spawn },
  { input: opts.interactive?.input ?? line, interactive: !!opts.interactive, walltime: job.walltime, killDelay: opts.killDelay ?? 2,
    cancel: opts.cancel, limits: momLimits(job.resources) })
  opts.cancel?.removeEventListener('abort', tasks.kill)
  tasks.kill()
  const taskStatuses = await given
  await tasks.close()
  return { exitStatus, taskStatuses, ...(job.sisters.length ? { tmTasks: tasks.tmTasks } : {}), starterMs: performance.now() - started }
}

/**
 * pbs_mom's task manager for the job: tasks on its vnodes through each node's starter, from
 * pbsdsh (emulator/tm.ts) or `tasks` (each on this node). Task numbers are job-wide: the job
 * shell is 1, `tasks` come next, pbsdsh's after them.
 */
async function startTasks(job: MomJob) {
  const { ppn } = job
  const running = new Set<number>()
  const tmTasks: NonNullable<EmulatedJob['tmTasks']> = []
  let lastTask = 1 + (job.opts.tasks?.length ?? 0)
  const run = async (node: number, argv: string[], env: NodeJS.ProcessEnv) => {
    const { pid, status } = runTask({ path: join(node === 0 ? job.hooks : job.sisters[node - 1].hooks, 'jobstarter'), args: argv, env, cwd: job.owner.home, files: job.files })
    running.add(pid)
    try {
      return await status
    } finally {
      running.delete(pid)
    }
  }
  const tm = await startTaskManager({
    cookie: job.cookie, vnodes: ppn * job.nodeCount, ppn,
    async spawn(vnode, argv) {
      const number = ++lastTask
      const status = await run(Math.floor(vnode / ppn), argv, taskEnv(job, { momPort: tm.port, task: number, vnode }))
      tmTasks.push({ task: number, node: Math.floor(vnode / ppn), argv, status })
      return status
    },
  })
  return {
    port: tm.port,
    /** pbsdsh's tasks, as they ended. */
    tmTasks,
    /** Task number `task` on this node, started now. */
    start: (argv: string[], task: number) => run(0, argv, taskEnv(job, { momPort: tm.port, task })),
    /** The job's end, qdel or walltime: moms signal every task's session; sisters TERM then KILL at once. */
    kill() {
      for (const pid of running) signalSession(pid, 'SIGTERM')
      setTimeout(() => running.forEach(pid => signalSession(pid, 'SIGKILL')), 50)
    },
    /** No more tasks; resolves once the running ones ended. */
    async close() {
      await tm.close()
      while (running.size) await new Promise(r => setTimeout(r, 20))
    },
  }
}

/** What the job shell and its tasks have of qsub: its -v variables and where it was called (PBS_O_*). */
function variableList(job: MomJob): NodeJS.ProcessEnv {
  const { opts, owner } = job
  return {
    ...job.momEnv,
    PBS_O_HOME: owner.home, PBS_O_LOGNAME: opts.user, PBS_O_PATH: process.env.PATH ?? '',
    PBS_O_SHELL: owner.shell, PBS_O_WORKDIR: job.workDir, PBS_O_HOST: hostname(), PBS_O_SERVER: hostname(),
    PBS_O_QUEUE: opts.queue, PBS_O_LANG: process.env.LANG ?? 'C',
    ...opts.variables,
  }
}

/** The job shell's environment: pbs_mom's own settings win over anything qsub -v said. */
function jobShellEnv(job: MomJob, momPort: number): NodeJS.ProcessEnv {
  const { opts, owner, pbsHome, prefix, walltime, gpus } = job
  return {
    ...variableList(job),
    HOME: owner.home, LOGNAME: opts.user, USER: opts.user, SHELL: owner.shell,
    PBS_JOBNAME: job.jobName, PBS_JOBID: job.jobId, PBS_QUEUE: opts.queue, PBS_JOBCOOKIE: job.cookie,
    // Seen on a real 6.1 mom: HOSTNAME empty, no PBS_NNODES, these set.
    PBS_NODENUM: '0', PBS_TASKNUM: '1', PBS_MOMPORT: String(momPort), HOSTNAME: '',
    PBS_GPUFILE: join(pbsHome, 'aux', `${prefix}gpu`), PBS_MICFILE: join(pbsHome, 'aux', `${prefix}mic`),
    ENVIRONMENT: 'BATCH', PBS_O_MAIL: `/var/mail/${opts.user}`,
    PBS_VERSION: 'TORQUE-6.1.3 (cbatch emulator)', PBS_VNODENUM: '0',
    PBS_ENVIRONMENT: opts.interactive ? 'PBS_INTERACTIVE' : 'PBS_BATCH',
    ...job.jobSizes,
    ...(walltime !== undefined ? { PBS_WALLTIME: String(walltime) } : {}),
    ...(gpus.length ? { CUDA_VISIBLE_DEVICES: gpus.join(',') } : {}),
  }
}

/**
 * A TM task's environment (contract: "Multi-node jobs and TM tasks"): no USER, LOGNAME,
 * SHELL, PBS_NP, PBS_NNODES or TMPDIR of mom's; the job's own, if it set them, stay.
 * Only the mother superior's tasks have the node file.
 */
function taskEnv(job: MomJob, { momPort, task, vnode = 0 }: { momPort: number; task: number; vnode?: number }): NodeJS.ProcessEnv {
  const { ppn, walltime } = job
  return {
    ...variableList(job),
    PBS_JOBID: job.jobId, HOME: job.owner.home, PBS_TASKNUM: String(task), PBS_NODENUM: String(Math.floor(vnode / ppn)), PBS_VNODENUM: String(vnode),
    PBS_MOMPORT: String(momPort), PBS_QUEUE: job.opts.queue, PBS_JOBCOOKIE: job.cookie, PBS_NUM_NODES: job.jobSizes.PBS_NUM_NODES, PBS_NUM_PPN: String(ppn),
    PBS_ENVIRONMENT: 'PBS_BATCH',
    ...(vnode < ppn ? { PBS_NODEFILE: job.momNodeFile, PBS_GPUFILE: join(job.pbsHome, 'aux', `${job.prefix}gpu`) } : {}),
    ...(walltime !== undefined ? { PBS_WALLTIME: String(walltime) } : {}),
  }
}

/** The sisters' epilogue.parallel, all at once, with the mother superior's epilogue environment. */
function runSisterEpilogues(job: MomJob, used: string): Promise<HookRun[]> {
  return Promise.all(job.sisters.map(sister => runScript({ path: join(sister.hooks, 'epilogue.parallel'),
    args: epilogueArgs(job, { used, exitStatus: '0', script: sister.script }), env: job.scriptEnv, cwd: join(sister.pbsHome, 'mom_priv'), files: NOTHING },
  { alarmSeconds: job.alarm })))
}

/** The mother superior's epilogue, told the job's exit status; an interactive job's prints into /dev/null. */
function runEpilogue(job: MomJob, { used, exitStatus }: { used: string; exitStatus: number }): Promise<HookRun> {
  return runScript({ path: join(job.hooks, 'epilogue'), args: epilogueArgs(job, { used, exitStatus: String(exitStatus), script: job.scriptPath }),
    env: job.scriptEnv, cwd: join(job.pbsHome, 'mom_priv'), files: job.opts.interactive ? NOTHING : job.files }, { alarmSeconds: job.alarm })
}
