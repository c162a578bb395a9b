// An emulator of pbs_mom for one job on this node, written to docs/torque-contract.md:
// the prologue, job starter and epilogue run as real processes with the argv, environment,
// stdin, stdout/stderr, cwd, permission check, time limits and kill sequence pbs_mom uses.
// It is how `cbatch run` tries cbatch without TORQUE, and the engine of the integration tests.
import { execFileSync, spawn, type StdioOptions } from 'node:child_process'
import { chmodSync, closeSync, constants as fsConstants, existsSync, fchmodSync, fchownSync, fstatSync, mkdirSync, rmdirSync, openSync, readSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { constants, hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { execa } from 'execa'
import { XMLBuilder } from 'fast-xml-parser'
import { createHash, randomBytes } from 'node:crypto'
import { writeWrappers } from '../hooks/wrapper.ts'
import type { SisterNode } from './engines.ts'
import { installPbsdsh, startTaskManager } from './tm.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'
import { DEFAULT_CONFIG_PATH } from '../lib/policy/config.ts'
import { formatDuration } from '../lib/format.ts'
import { parentOf, signalSession } from '../lib/host/proc.ts'
import { lookupUser, type Identity } from '../lib/host/identity.ts'
import { readFileAsOwner } from '../lib/host/asowner.ts'
import { assertRootControlled, replaceFile } from '../lib/host/trusted.ts'
import { UnsafePathError, UsageError } from '../lib/errors.ts'
import { parseDuration, parseResourceList, parseSize } from '../lib/torque/contract.ts'
import { parseNodes, type NodeSpec } from '../lib/torque/nodes.ts'

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

export interface HookRun {
  /** Exit code as pbs_mom sees it: the code, 256+signal when killed, -1 permission, -4 timeout. */
  status: number
  /** How long it ran, milliseconds. */
  ms: number
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

const PERMISSION_DENIED = -1
const TIMED_OUT = -4
const WALLTIME_KILLED = -11
let sequence = 0
/** The emulator's pbsdsh (emulator/tm.ts), written once per process. */
let pbsdshInstalled: string | undefined
/** Like TORQUE's /var/spool/torque: outside any directory a job may be submitted from. */
export const DEFAULT_PBS_HOME = '/var/spool/cbatch-pbs_home'

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
      const result = await runJob(opts, { owner, group, jobId, pbsHome }).finally(() => tails && Promise.all(tails.map(stop => stop())))
      if (result.outcome !== 'requeued' || attempt >= (opts.attempts ?? 1)) return { ...result, attempts: attempt }
    }
  } finally {
    // pbs_mom forgets the job: its files go, and with them the job's .JB.
    if (!opts.keep) {
      const prefix = jobFilePrefix(jobId)
      for (const f of ['mom_priv/jobs/%.SC', 'mom_priv/jobs/%.JB', 'spool/%.OU', 'spool/%.ER', 'aux/%', 'aux/%gpu']) {
        const file = join(pbsHome, f.replace('%', prefix))
        // Output the record could not hold whole stays, where readOutput said it is.
        if (!opts.follow && f.startsWith('spool/') && (statSync(file, { throwIfNoEntry: false })?.size ?? 0) > MAX_RECORDED_OUTPUT) continue
        rmSync(file, { force: true })
      }
      for (const sister of opts.sisters ?? []) rmSync(join(sister.pbsHome, 'mom_priv/jobs', `${prefix}.JB`), { force: true })
    }
  }
}

/** One start of the job on this node (and its sisters): what emulateJob repeats while the prologue requeues it. */
async function runJob(opts: EmulatorOptions, { owner, group, jobId, pbsHome }: { owner: Identity; group: string; jobId: string; pbsHome: string }): Promise<EmulatedJob> {
  const momPriv = join(pbsHome, 'mom_priv')
  const jobsDir = join(momPriv, 'jobs')

  // An array sub-job N[i].host has files N-i.host.* (contract).
  const prefix = jobFilePrefix(jobId)
  const scriptPath = join(jobsDir, `${prefix}.SC`)
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
  const { chunks, slots, gpus } = placeJob({ nodeFile: join(pbsHome, 'aux', prefix), nodes, ppn, nodeNames, gpus: opts.gpus })
  const workDir = opts.workDir ?? process.cwd()
  const queue = opts.queue
  const jobName = opts.jobName ?? opts.script.split('/').pop()!.slice(0, 15)

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
  const prologueArgs = [jobId, opts.user, group, jobName, opts.resources, queue, '', scriptPath]
  // qsub -j oe: pbs_mom opens one file for both.
  const files = { out: outFile, err: opts.join ? outFile : errFile }
  const alarm = opts.prologAlarm ?? 300
  const hooks = hooksFor(opts.hooksDir, opts.config, pbsHome)

  // The job's secret: the mother superior makes it, sends it to its sisters, saves it in the
  // job file and gives it to the job shell and every task (PBS_JOBCOOKIE).
  const cookie = randomBytes(16).toString('hex').toUpperCase()
  // Where the job's slots are, as pbs_server tells every node (exec_host: `host/0-1+host2/0`).
  const execHost = nodeNames.map((name, i) => `${name}/0${slots[i] > 1 ? `-${slots[i] - 1}` : ''}`).join('+')
  const record = { jobId, queue: opts.queue, owner, group, resources: opts.resources, variables: opts.variables ?? {}, cookie, execHost }
  // pbs_mom writes the job file while the prologue already runs (contract, "When the job file
  // is written": seen ~200 ms in once; later checks never saw it before the prologue returned).
  const jobFile = () => writeJobFile(pbsHome, record)
  const cgroups = opts.cgroups ? makeJobCgroups(jobId, resources, opts.cgroups) : undefined

  // Sisters: prologue.parallel first, all of them, before the mother superior's prologue
  // (contract: no script, job file or node file yet; output to /dev/null; no PBS_JOBID).
  const sisterHooks = sisters.map(sister => hooksFor(opts.hooksDir, sister.config, sister.pbsHome))
  const sisterScript = (i: number) => join(sisters[i].pbsHome, 'mom_priv', 'jobs', `${prefix}.SC`)
  const nothing = { out: '/dev/null', err: '/dev/null' }
  const sisterPrologues = await Promise.all(sisters.map((sister, i) => {
    const env = {
      ...momEnv, PATH: '/bin:/usr/bin', PBS_MSHOST: hostname(), PBS_NODENUM: String(i + 1), PBS_NP: hookSizes.PBS_NP,
      PBS_NUM_NODES: hookSizes.PBS_NUM_NODES, PBS_NUM_PPN: hookSizes.PBS_NUM_PPN, PBS_O_WORKDIR: workDir, PBS_RESOURCE_NODES: nodes,
    }
    return runScript({ path: join(sisterHooks[i], 'prologue.parallel'), args: [...prologueArgs.slice(0, 7), sisterScript(i)], env,
      cwd: join(sister.pbsHome, 'mom_priv'), files: nothing }, { alarmSeconds: alarm })
  }))
  // Then a sister saves the job, and from then on has its job file.
  sisters.forEach(sister => writeJobFile(sister.pbsHome, record))
  const sisterEpilogues = (used: string) => Promise.all(sisters.map((sister, i) => runScript({ path: join(sisterHooks[i], 'epilogue.parallel'),
    args: [jobId, opts.user, group, jobName, '0', opts.resources, used, queue, '', '0', sisterScript(i)], env: scriptEnv, cwd: join(sister.pbsHome, 'mom_priv'), files: nothing },
  { alarmSeconds: alarm })))
  const noUse = 'cput=00:00:00,vmem=0kb,walltime=00:00:00,mem=0kb,energy_used=0'
  // A sister's failed prologue.parallel never aborts the job: the mother superior runs its
  // epilogue with exit status -3 and the job is requeued (and that node goes down).
  if (sisterPrologues.some(p => p.status !== 0)) {
    const sisterEpilogueRuns = await sisterEpilogues(noUse)
    const epilogue = await runScript({ path: join(hooks, 'epilogue'), args: [jobId, opts.user, group, jobName, '0', opts.resources, noUse, queue, '', '-3', scriptPath],
      env: scriptEnv, cwd: momPriv, files }, { alarmSeconds: alarm })
    if (cgroups) await cgroups.remove()
    return { jobId, prologue: { status: 0, ms: 0 }, outcome: 'requeued', epilogue, sisterPrologues, sisterEpilogues: sisterEpilogueRuns,
      stdout: readOutput(outFile), stderr: readOutput(errFile), pbsHome }
  }

  const prologue = await runScript({ path: join(hooks, 'prologue'), args: prologueArgs, env: scriptEnv, cwd: momPriv, files, inside: cgroups?.spawn },
    { alarmSeconds: alarm, meanwhile: jobFile })
  // An interactive job has nobody to wait for it: any failure aborts it.
  const outcome = prologue.status === 0 ? 'ran' : prologue.status === 1 || opts.interactive ? 'aborted' : 'requeued'
  const result: EmulatedJob = { jobId, prologue, outcome, stdout: '', stderr: '', pbsHome, ...(sisters.length ? { sisterPrologues } : {}) }
  // The mother superior's prologue failed: mom aborts the sisters' part of the job without
  // epilogue.parallel, and they forget it (contract, "When a prologue fails").
  if (outcome !== 'ran') sisters.forEach(sister => rmSync(join(sister.pbsHome, 'mom_priv/jobs', `${prefix}.JB`), { force: true }))
  if (outcome === 'ran') {
    const started = performance.now()
    const variableList: NodeJS.ProcessEnv = {
      ...momEnv,
      PBS_O_HOME: owner.home, PBS_O_LOGNAME: opts.user, PBS_O_PATH: process.env.PATH ?? '',
      PBS_O_SHELL: owner.shell, PBS_O_WORKDIR: workDir, PBS_O_HOST: hostname(), PBS_O_SERVER: hostname(),
      PBS_O_QUEUE: queue, PBS_O_LANG: process.env.LANG ?? 'C',
      ...opts.variables,
    }
    // A TM task's environment (contract: "Multi-node jobs and TM tasks"): no USER, LOGNAME,
    // SHELL, PBS_NP, PBS_NNODES or TMPDIR of mom's; the job's own, if it set them, stay.
    // Only the mother superior's tasks have the node file.
    const taskEnv = (task: number, vnode = 0): NodeJS.ProcessEnv => ({
      ...variableList,
      PBS_JOBID: jobId, HOME: owner.home, PBS_TASKNUM: String(task), PBS_NODENUM: String(Math.floor(vnode / ppn)), PBS_VNODENUM: String(vnode),
      PBS_MOMPORT: String(tm.port), PBS_QUEUE: queue, PBS_JOBCOOKIE: cookie, PBS_NUM_NODES: jobSizes.PBS_NUM_NODES, PBS_NUM_PPN: String(ppn),
      PBS_ENVIRONMENT: 'PBS_BATCH',
      ...(vnode < ppn ? { PBS_NODEFILE: momNodeFile, PBS_GPUFILE: join(pbsHome, 'aux', `${prefix}gpu`) } : {}),
      ...(walltime !== undefined ? { PBS_WALLTIME: String(walltime) } : {}),
    })
    // Task numbers are job-wide: the job shell is 1.
    let lastTask = 1 + (opts.tasks?.length ?? 0)
    const running = new Set<number>()
    const tmTasks: NonNullable<EmulatedJob['tmTasks']> = []
    const starterOf = (node: number) => join(node === 0 ? hooks : sisterHooks[node - 1], 'jobstarter')
    const task = async (node: number, argv: string[], env: NodeJS.ProcessEnv) => {
      const { pid, status } = runTask(starterOf(node), argv, env, owner.home, files)
      running.add(pid)
      try {
        return await status
      } finally {
        running.delete(pid)
      }
    }
    const tm = await startTaskManager({
      cookie, vnodes: ppn * nodeCount, ppn,
      async spawn(vnode, argv) {
        const number = ++lastTask
        const status = await task(Math.floor(vnode / ppn), argv, taskEnv(number, vnode))
        tmTasks.push({ task: number, node: Math.floor(vnode / ppn), argv, status })
        return status
      },
    })
    // The job's end, qdel or walltime: moms signal every task's session; sisters TERM then KILL at once.
    const killTasks = () => {
      for (const pid of running) signalSession(pid, 'SIGTERM')
      setTimeout(() => running.forEach(pid => signalSession(pid, 'SIGKILL')), 50)
    }
    opts.cancel?.addEventListener('abort', killTasks, { once: true })
    // pbs_mom's own settings win over anything qsub -v said.
    const jobEnv: NodeJS.ProcessEnv = {
      ...variableList,
      HOME: owner.home, LOGNAME: opts.user, USER: opts.user, SHELL: owner.shell,
      PBS_JOBNAME: jobName, PBS_JOBID: jobId, PBS_QUEUE: queue, PBS_JOBCOOKIE: cookie,
      // Seen on a real 6.1 mom: HOSTNAME empty, no PBS_NNODES, these set.
      PBS_NODENUM: '0', PBS_TASKNUM: '1', PBS_MOMPORT: String(tm.port), HOSTNAME: '',
      PBS_GPUFILE: join(pbsHome, 'aux', `${prefix}gpu`), PBS_MICFILE: join(pbsHome, 'aux', `${prefix}mic`),
      ENVIRONMENT: 'BATCH', PBS_O_MAIL: `/var/mail/${opts.user}`,
      PBS_VERSION: 'TORQUE-6.1.3 (cbatch emulator)', PBS_VNODENUM: '0',
      PBS_ENVIRONMENT: opts.interactive ? 'PBS_INTERACTIVE' : 'PBS_BATCH',
      ...jobSizes,
      ...(walltime !== undefined ? { PBS_WALLTIME: String(walltime) } : {}),
      ...(gpus.length ? { CUDA_VISIBLE_DEVICES: gpus.join(',') } : {}),
    }
    const tasks = Promise.all((opts.tasks ?? []).map((argv, i) => task(0, argv, taskEnv(i + 2))))
    // As a real 6.1 mom sends it: no `exec ` (that comes only with $exec_with_exec true).
    const line = `${scriptPath}${opts.scriptArgs?.length ? ' ' + opts.scriptArgs.join(' ') : ''}\n`
    const command = opts.interactive?.command
    result.exitStatus = await runStarter({ path: join(hooks, 'jobstarter'), args: command ? [owner.shell, '-c', command] : [owner.shell],
      env: jobEnv, cwd: jobEnv.PBS_O_INITDIR || owner.home, files, inside: cgroups?.spawn },
    { input: opts.interactive?.input ?? line, interactive: !!opts.interactive, walltime, killDelay: opts.killDelay ?? 2, cancel: opts.cancel, limits: momLimits(resources) })
    // The job shell ended: whatever the job's tasks still run is killed, on every node.
    opts.cancel?.removeEventListener('abort', killTasks)
    killTasks()
    result.taskStatuses = await tasks
    await tm.close()
    while (running.size) await new Promise(r => setTimeout(r, 20))
    if (sisters.length) result.tmTasks = tmTasks
    result.starterMs = performance.now() - started
    const wall = formatDuration(result.starterMs / 1000)
    const used = `cput=00:00:00,vmem=0kb,walltime=${wall},mem=0kb,energy_used=0`
    if (sisters.length) result.sisterEpilogues = await sisterEpilogues(used)
    const epilogueArgs = [jobId, opts.user, group, jobName, '0', opts.resources, used, queue, '', String(result.exitStatus), scriptPath]
    // Epilogues of interactive jobs print into /dev/null.
    result.epilogue = await runScript({ path: join(hooks, 'epilogue'), args: epilogueArgs, env: scriptEnv, cwd: momPriv,
      files: opts.interactive ? { out: '/dev/null', err: '/dev/null' } : files }, { alarmSeconds: alarm })
  }
  if (cgroups) result.cgroupLeftovers = await cgroups.remove()
  // After a prologue exit 1, pbs_mom copies no output back to the owner.
  if (outcome !== 'aborted') {
    result.stdout = readOutput(outFile)
    result.stderr = readOutput(errFile)
  }
  return result
}

export interface EmulatedJobFile {
  jobId: string
  queue: string
  owner: Pick<Identity, 'name' | 'uid' | 'gid'>
  group: string
  resources: string
  variables: Record<string, string>
  cookie: string
  execHost?: string
}

/** Most of a job's output file the record holds (a string cannot hold a GiB). */
const MAX_RECORDED_OUTPUT = 64 * 1024 ** 2

/**
 * Copies what is appended to `file` into `to`, from its start, until the returned stop()
 * (which copies the rest); a file not there yet is waited for. Never more than 1 MiB in memory.
 */
function tail(file: string, to: NodeJS.WritableStream): () => Promise<void> {
  let offset = 0
  let stopped = false
  const chunk = Buffer.alloc(1024 ** 2)
  const copy = async () => {
    let fd: number
    try {
      fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
    } catch {
      return
    }
    try {
      for (let n; (n = readSync(fd, chunk, 0, chunk.length, offset)) > 0; offset += n) {
        if (!to.write(chunk.subarray(0, n))) await new Promise(r => to.once('drain', r))
      }
    } finally {
      closeSync(fd)
    }
  }
  const done = (async () => {
    while (!stopped) {
      await copy()
      await new Promise(r => setTimeout(r, 200))
    }
    await copy()
  })()
  return () => {
    stopped = true
    return done
  }
}

/** The job's output as delivered; one larger than MAX_RECORDED_OUTPUT is kept whole in its file (emulateJob), and said so. */
function readOutput(file: string): string {
  const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
  try {
    const size = fstatSync(fd).size
    if (size <= MAX_RECORDED_OUTPUT) return readFileSync(fd, 'utf8')
    const head = Buffer.alloc(MAX_RECORDED_OUTPUT)
    readSync(fd, head, 0, MAX_RECORDED_OUTPUT, 0)
    return `${head.toString('utf8')}\n[cbatch run: the output is ${size} bytes; the first ${MAX_RECORDED_OUTPUT} are above, all of it (its end too) is kept in ${file}]\n`
  } finally {
    closeSync(fd)
  }
}

/** The job as TORQUE 6's pbs_mom stores it: `mom_priv/jobs/<jobid>.JB`, XML, root's (src/server/job_recov.c, saveJobToXML). */
export function writeJobFile(pbsHome: string, job: EmulatedJobFile): string {
  const file = join(pbsHome, 'mom_priv', 'jobs', `${jobFilePrefix(job.jobId)}.JB`)
  replaceFile(file, jobFileXml(job), 0o600) // it holds the job's secret cookie: root's alone
  return file
}

/**
 * The emulated PBS_HOME's directories, each root's alone with exactly its mode (as pbs_mom
 * keeps them: job owners may pass through, their scripts are in jobs/; one left open to
 * others, as TORQUE's sticky spool is, is closed): root makes and opens job files
 * there (the owner's .OU/.ER among them), so no one else may plant a name or link in them
 * first. The PBS_HOME itself must be where only root can change what its path names.
 */
function momDirs(pbsHome: string): void {
  assertRootControlled(pbsHome, 'emulated PBS_HOME', { mayBeMissing: true })
  for (const [dir, mode] of [['', 0o755], ['mom_priv', 0o751], ['mom_priv/jobs', 0o751], ['spool', 0o755], ['aux', 0o755]] as const) {
    const path = join(pbsHome, dir)
    mkdirSync(path, { recursive: true, mode })
    const stat = statSync(path)
    if (!stat.isDirectory() || stat.uid !== 0) throw new UnsafePathError(`emulated PBS_HOME ${pbsHome} is not safe: ${path} is not root's own directory`)
    chmodSync(path, mode)
  }
}

/**
 * A new file of the job in a PBS_HOME directory (root's alone): never through a name already
 * there (one a crashed run left is removed first), given to `owner` on the open file itself.
 */
function createFile(file: string, content: string | Uint8Array, mode: number, owner: Pick<Identity, 'uid' | 'gid'>): void {
  rmSync(file, { force: true })
  const fd = openSync(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, mode)
  try {
    writeFileSync(fd, content)
    fchmodSync(fd, mode)
    fchownSync(fd, owner.uid, owner.gid)
  } finally {
    closeSync(fd)
  }
}

function jobFileXml(job: EmulatedJobFile): string {
  const flags = { '@_flags': '1' }
  const attribute = (value: string) => ({ ...flags, '#text': value })
  return new XMLBuilder({ format: true, ignoreAttributes: false, suppressEmptyNode: false }).build({
    '?xml': { '@_version': '1.0' },
    job: {
      version: 131842, state: 4, substate: 42, server_flags: 33, start_time: Math.floor(Date.now() / 1000),
      jobid: job.jobId, fileprefix: jobFilePrefix(job.jobId), queue: '', destination_queue: '', record_type: 3, svr_addr: 0, exit_status: 0,
      execution_uid: job.owner.uid, execution_gid: job.owner.gid,
      attributes: {
        Job_Owner: attribute(`${job.owner.name}@${hostname()}`),
        job_state: attribute('R'),
        queue: attribute(job.queue),
        Resource_List: Object.fromEntries([...parseResourceList(job.resources)].map(([k, v]) => [k, attribute(v)])),
        Variable_List: attribute(Object.entries(job.variables).map(([k, v]) => `${k}=${v}`).join('\n')),
        euser: attribute(job.owner.name),
        cookie: attribute(job.cookie),
        ...(job.execHost ? { exec_host: attribute(job.execHost) } : {}),
        egroup: attribute(job.group),
      },
    },
  })
}

/**
 * The hooks as install.sh would install them for this PBS_HOME and `config`: wrappers
 * naming both, kept in PBS_HOME per config and sharing the built bundles of `hooksDir`.
 */
export function hooksFor(hooksDir: string, config = DEFAULT_CONFIG_PATH, pbsHome = DEFAULT_PBS_HOME): string {
  const elsewhere = { momPriv: join(pbsHome, 'mom_priv'), bundles: join(resolve(hooksDir), 'cbatch.d') }
  const options = { node: process.execPath, config, elsewhere }
  const dir = join(pbsHome, 'cbatch-hooks', createHash('sha256').update(JSON.stringify(options)).digest('hex').slice(0, 16))
  writeWrappers(dir, options) // each time: whole files, so jobs running meanwhile never see half of one
  return dir
}

/** A program pbs_mom starts: its argv, environment and directory, the files its stdout and stderr go to. */
interface Launch {
  path: string
  args: string[]
  env: NodeJS.ProcessEnv
  cwd: string
  files: { out: string; err: string }
  /** Starts it inside the job's cgroups (pbs_mom built with cgroups). */
  inside?: Inside
}

/**
 * A root script of the prologue/epilogue family, with pbs_mom's permission check and alarm;
 * `meanwhile` is what pbs_mom does 200 ms after starting it (or once it ended, if sooner).
 */
async function runScript(launch: Launch, { alarmSeconds, meanwhile }: { alarmSeconds: number; meanwhile?: () => void }): Promise<HookRun> {
  let done = !meanwhile
  const once = () => {
    if (!done) meanwhile!()
    done = true
  }
  const late = setTimeout(once, 200)
  try {
    return await runChecked(launch, alarmSeconds)
  } finally {
    clearTimeout(late)
    once()
  }
}

async function runChecked({ path, args, env, cwd, files, inside = start => start() }: Launch, alarmSeconds: number): Promise<HookRun> {
  let mode: ReturnType<typeof statSync>
  try {
    mode = statSync(path)
  } catch {
    return { status: 0, ms: 0 } // a missing script counts as success
  }
  const owned = mode.uid === 0 && mode.isFile() && (mode.mode & 0o500) === 0o500 && (mode.mode & 0o022) === 0
  if (!owned) return { status: PERMISSION_DENIED, ms: 0 }
  const fds = openOutputs(files)
  try {
    const started = performance.now()
    // pbs_mom's umask: 0077 for the mother superior's prologue and epilogue, 0022 for a
    // sister's (contract, "How the prologues and epilogues run").
    const mask = path.endsWith('.parallel') ? 0o022 : 0o077
    const child = inside(() => withUmask(mask, () => spawn(path, args, { cwd, env, stdio: ['ignore', fds[0], fds[1]], detached: true })))
    let timedOut = false
    const alarm = setTimeout(() => {
      timedOut = true
      signalSession(child.pid!, 'SIGKILL')
    }, (alarmSeconds - 10) * 1000)
    const { code } = await exited(child)
    clearTimeout(alarm)
    const ms = performance.now() - started
    if (timedOut) return { status: TIMED_OUT, ms }
    return { status: code ?? 0, ms } // killed by a signal, not the alarm: the job runs
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/** The environment of root's own children: fixed, never the job's (docs/security.md, rule 1c). */
const ROOT_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }

/**
 * What pbs_mom does between fork and exec of a batch job's starter, with what every node
 * has (busybox-static, util-linux): the child is statically linked busybox, already with the
 * job's environment as pbs_mom's child has it (it reads none of it: the wrappers run so
 * too), holding on fd 3 while root sets the job's rlimits on it (prlimit --pid, ROOT_ENV);
 * then it execs the starter by its absolute path, in the session it leads. Nothing of the
 * job reaches a dynamically linked root process or a command line others can read.
 */
const HOLD = 'read -r _ <&3 && exec "$0" "$@" 3<&-'

/** prlimit's option for each rlimit pbs_mom sets (momLimits). */
const PRLIMIT_OPTIONS: Record<string, string> = { RLIMIT_CPU: 'cpu', RLIMIT_FSIZE: 'fsize', RLIMIT_DATA: 'data', RLIMIT_RSS: 'rss', RLIMIT_AS: 'as' }

/** Sets the limits on the held child, then lets it exec; a child it cannot limit is killed, with the reason in `err`. */
function release(pid: number, limits: Rlimit[], hold: NodeJS.WritableStream, err: number): void {
  try {
    // A hard limit of -1 is left as it is: only the soft one is set (momLimits, no CAP_SYS_RESOURCE).
    const options = limits.map(([name, soft, hard]) => `--${PRLIMIT_OPTIONS[name]}=${soft}:${hard === -1 ? '' : hard}`)
    if (options.length) execFileSync('/usr/bin/prlimit', ['--pid', String(pid), ...options], { env: ROOT_ENV, stdio: ['ignore', 'ignore', 'pipe'] })
    hold.end('go\n')
  } catch (error) {
    writeFileSync(err, `cbatch run: cannot set the job's rlimits on its starter: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}\n`)
    process.kill(pid, 'SIGKILL')
  }
}

/**
 * The same for an interactive job (qsub -I), whose starter gets a new session on a new pty:
 * python3 (dynamically linked, so with ROOT_ENV and isolated: -I -S) reads the starter's argv,
 * environment and limits as JSON from fd 3, forks it on the pty and relays the master.
 */
const LAUNCHER = `
import json, os, pty, resource, select, signal, sys
with os.fdopen(3, 'rb') as f:
    spec = json.loads(f.read())
def start():
    for name, soft, hard in spec['limits']:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.execve(spec['argv'][0], spec['argv'], spec['env'])
pid, master = pty.fork()
if pid == 0:
    start()
inputs = [0, master]
while True:
    for fd in select.select(inputs, [], [])[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b''
        if fd == master:
            if not data:
                inputs = []
                break
            os.write(1, data)
        elif data:
            os.write(master, data)
        else:
            inputs.remove(0)
    if not inputs:
        break
status = os.waitpid(pid, 0)[1]
if os.WIFSIGNALED(status):
    if os.WTERMSIG(status) != signal.SIGKILL:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
`

/**
 * The job starter, privileged, as session leader: batch jobs get the script line on a stdin
 * pipe (HOLD); interactive ones a terminal (LAUNCHER holds the pty master).
 */
async function runStarter({ path, args, env, cwd, files, inside = start => start() }: Launch,
  { input, interactive, walltime, killDelay, cancel, limits }:
  { input: string; interactive: boolean; walltime?: number; killDelay: number; cancel?: AbortSignal; limits: Rlimit[] }): Promise<number> {
  const fds = openOutputs(files)
  try {
    // pbs_mom's umask and the job's rlimits, set on the starter before exec.
    const stdio: StdioOptions = ['pipe', fds[0], fds[1], 'pipe']
    const child = inside(() => withUmask(0o077, () => (interactive
      ? spawn('/usr/bin/python3', ['-I', '-S', '-c', LAUNCHER], { cwd, env: ROOT_ENV, stdio, detached: true })
      : spawn('/bin/busybox', ['sh', '-c', HOLD, path, ...args], { cwd, env, stdio, detached: true }))))
    const control = child.stdio[3] as NodeJS.WritableStream
    control.on('error', () => undefined) // a launcher that died first: its exit says so
    if (interactive) control.end(JSON.stringify({ argv: [path, ...args], env, limits }))
    else if (child.pid !== undefined) release(child.pid, limits, control, fds[1])
    child.stdin!.on('error', () => undefined) // a job that never reads its stdin
    child.stdin!.end(input)
    // pbs_mom signals every process of the job's session: the starter leads it.
    const session = () => (interactive ? childOf(child.pid!) : child.pid!)
    const timers: NodeJS.Timeout[] = []
    let walltimeKilled = false
    const kill = () => {
      signalSession(session(), 'SIGTERM')
      timers.push(setTimeout(() => signalSession(session(), 'SIGKILL'), killDelay * 1000))
    }
    if (walltime !== undefined) {
      timers.push(setTimeout(() => {
        walltimeKilled = true
        writeFileSync(fds[1], `=>> PBS: job killed: walltime ${walltime + 1} exceeded limit ${walltime}\n`)
        kill()
      }, walltime * 1000))
    }
    cancel?.addEventListener('abort', kill, { once: true })
    const { code, signal } = await exited(child)
    timers.forEach(clearTimeout)
    cancel?.removeEventListener('abort', kill)
    if (walltimeKilled) return WALLTIME_KILLED
    return code ?? 256 + constants.signals[signal!]
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/** An rlimit as Python's resource module names it, soft and hard (-1: unlimited). */
type Rlimit = [name: string, soft: number, hard: number]

/**
 * The rlimits pbs_mom sets on the starter (linux/mom_mach.c, mom_set_limits). Without
 * CAP_SYS_RESOURCE (some sandboxes), only soft limits: the hooks could not lift hard ones,
 * which pbs_mom's root can.
 */
function momLimits(resources: Map<string, string>): Rlimit[] {
  const hard = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))
  const mayRaise = hard ? (BigInt(`0x${hard[1]}`) >> 24n) & 1n : 0n
  const limit = (name: string, v: number): Rlimit => [name, v, mayRaise ? v : -1]
  const size = (name: string) => {
    try {
      return resources.has(name) ? parseSize(resources.get(name)!) : undefined
    } catch {
      return undefined // a size cbatch refuses (mem=0b): the prologue says so, the starter never runs
    }
  }
  const oneNode = !/^([2-9]|\d\d+)|\+/.test(resources.get('nodes') ?? '1')
  const memory = size('pmem') ?? (oneNode ? size('mem') : undefined)
  const virtual = size('pvmem') ?? size('vmem')
  return [
    ...(resources.has('pcput') ? [limit('RLIMIT_CPU', parseDuration(resources.get('pcput')!))] : []),
    ...(resources.has('file') ? [limit('RLIMIT_FSIZE', size('file')!)] : []),
    ...(memory !== undefined ? [limit('RLIMIT_DATA', memory), limit('RLIMIT_RSS', memory)] : []),
    ...(virtual !== undefined ? [limit('RLIMIT_AS', virtual)] : []),
  ]
}

/** The job's .OU and .ER for appending; one open file when they are one (qsub -j oe). */
function openOutputs(files: { out: string; err: string }): [number, number] {
  const open = (file: string) => openSync(file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW)
  const out = open(files.out)
  return [out, files.err === files.out ? out : open(files.err)]
}

/** Runs a spawn where pbs_mom would start the process (the job's cgroups, or as it is). */
type Inside = <T>(start: () => T) => T

/** The controllers a TORQUE built with cgroups makes for each job, and removes after it. */
const MOM_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices']

/** The job's cgroups as pbs_mom makes them (contract: "TORQUE built with cgroups"). */
function makeJobCgroups(jobId: string, resources: Map<string, string>, { cpus }: { cpus: string }) {
  const sys = '/sys/fs/cgroup'
  const dirOf = (controller: string) => join(sys, controller, 'torque', jobId)
  for (const controller of MOM_CONTROLLERS) {
    mkdirSync(dirOf(controller), { recursive: true })
    if (controller === 'cpuset') {
      // A new cpuset has no CPUs or memory nodes until given some, level by level.
      const mems = readFileSync(join(sys, 'cpuset', 'cpuset.mems'), 'utf8').trim()
      for (const dir of [join(sys, 'cpuset', 'torque'), dirOf('cpuset')]) {
        writeFileSync(join(dir, 'cpuset.cpus'), dir === dirOf('cpuset') ? cpus : readFileSync(join(sys, 'cpuset', 'cpuset.cpus'), 'utf8').trim())
        writeFileSync(join(dir, 'cpuset.mems'), mems)
      }
    }
  }
  const mem = resources.get('mem')
  if (mem) writeFileSync(join(dirOf('memory'), 'memory.limit_in_bytes'), String(parseSize(mem)))
  const own = readFileSync('/proc/self/cgroup', 'utf8')
  const ownPath = (controller: string) => new RegExp(`^\\d+:(?:[^:]*,)?${controller}(?:,[^:]*)?:(.*)$`, 'm').exec(own)?.[1] ?? '/'
  const move = (dir: (controller: string) => string) => {
    for (const controller of MOM_CONTROLLERS) writeFileSync(join(dir(controller), 'cgroup.procs'), String(process.pid))
  }
  return {
    /** Spawns inside the job's cgroups, as pbs_mom does before it execs: the child starts there. */
    spawn<T>(start: () => T): T {
      move(dirOf)
      try {
        return start()
      } finally {
        move(controller => join(sys, controller, ownPath(controller)))
      }
    },
    /** pbs_mom's removal: its own controllers, retried a while; what is left afterwards. */
    async remove(): Promise<string[]> {
      for (let attempt = 0; attempt < 10; attempt++) {
        const left = MOM_CONTROLLERS.filter(c => existsSync(dirOf(c)))
        for (const c of left) try { rmdirSync(dirOf(c)) } catch { /* busy: retried */ }
        if (!MOM_CONTROLLERS.some(c => existsSync(dirOf(c)))) break
        await new Promise(r => setTimeout(r, 200))
      }
      return readdirSync(sys).map(dirOf).filter(existsSync)
    },
  }
}

/**
 * Where pbs_server placed the job, written as pbs_mom writes it before the prologue: each
 * node's slots in the node file (chunk by chunk where the spec's chunks are the nodes,
 * `1:ppn=2+1:ppn=1`), and with NVIDIA support this node's GPUs in the gpu file beside it.
 */
function placeJob({ nodeFile, nodes, ppn, nodeNames, gpus: choice }: { nodeFile: string; nodes: string; ppn: number; nodeNames: string[]; gpus?: number[] }) {
  const chunks = specChunks(nodes)
  const perNode = chunks?.flatMap(c => Array<number>(c.count).fill(c.ppn))
  const slots = perNode?.length === nodeNames.length ? perNode : nodeNames.map(() => ppn)
  replaceFile(nodeFile, nodeNames.map((name, i) => `${name}\n`.repeat(slots[i])).join(''), 0o644)
  const asked = Number(/(?:^|:)gpus=(\d+)/.exec(nodes)?.[1] ?? 0)
  const gpus = asked ? (choice ?? Array.from({ length: asked }, (_, i) => i)).slice(0, asked) : []
  if (gpus.length) replaceFile(`${nodeFile}gpu`, gpus.map(i => `${hostname()}-gpu${i}\n`).join(''), 0o644)
  return { chunks, slots, gpus }
}

/** The node spec's chunks, or undefined for one pbs_server would take but cbatch cannot read (mom passes it on all the same). */
function specChunks(nodes: string): NodeSpec[] | undefined {
  try {
    return parseNodes(nodes)
  } catch {
    return undefined
  }
}

/** Runs `start` (a spawn) with the process umask `mask`: the child inherits it, as from pbs_mom. */
function withUmask<T>(mask: number, start: () => T): T {
  const old = process.umask(mask)
  try {
    return start()
  } finally {
    process.umask(old)
  }
}

/** A TM task through the starter: its own argv, stdin /dev/null, output into the job's, session leader, cwd $HOME. */
function runTask(path: string, argv: string[], env: NodeJS.ProcessEnv, home: string, files: { out: string; err: string }): { pid: number; status: Promise<number> } {
  const fds = openOutputs(files)
  try {
    const child = withUmask(0o077, () => spawn(path, argv, { cwd: home, env, argv0: path, stdio: ['ignore', fds[0], fds[1]], detached: true }))
    const status = exited(child).then(({ code, signal }) => code ?? 256 + constants.signals[signal!])
    return { pid: child.pid!, status }
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/** The child of `pid` (the starter under `script`), or 0. */
function childOf(pid: number): number {
  for (const entry of readdirSync('/proc')) {
    try {
      if (/^\d+$/.test(entry) && parentOf(readFileSync(`/proc/${entry}/stat`, 'utf8')) === pid) return Number(entry)
    } catch {
      // ended meanwhile
    }
  }
  return 0
}

function exited(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
}

