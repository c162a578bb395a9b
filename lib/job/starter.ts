// The job starter's work: run the job shell or a TM task in the job's container (or
// natively, as its owner, for queues cbatch does not manage), wire stdio through, forward
// signals, return the status. Whose job it is comes from root's records, never the job.
import { spawn } from 'node:child_process'
import { accessSync, constants as fsConstants, fstatSync, readFileSync, statSync } from 'node:fs'
import { signalSession, startTimeOf } from '../host/proc.ts'
import { constants } from 'node:os'
import type { Readable, Writable } from 'node:stream'
import type { ReadStream, WriteStream } from 'node:tty'
import { oomKills, readUsage } from '../host/cgroup.ts'
import { findJobContainer } from './container.ts'
import { LABEL, labelOf } from '../engine/labels.ts'
import { formatBytes } from '../format.ts'
import type { ContainerDetails, ContainerEngine } from '../engine/engine.ts'
import { visibleDevicesInside } from '../host/gpus.ts'
import { ContainerNotFoundError, ContainerStoppedError, EngineError, IdentityError, JobFileError, PolicyError } from '../errors.ts'
import type { Identity } from '../host/identity.ts'
import type { RunningJob } from '../torque/job.ts'
import { ImageReference } from '../policy/reference.ts'
import { redirection } from './output.ts'
import { containerFiles } from '../host/files.ts'
import { sameObject } from '../host/mounts.ts'
import { ownLimits, restoringOptions, type Rlimits } from '../torque/rlimits.ts'
import type { StarterFacts } from '../torque/contract.ts'

/** Signals pbs_mom (qdel, walltime) and terminals send that the job must see. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGCONT'] as const

export interface Stdio {
  stdin: Readable
  stdout: Writable
  stderr: Writable
}

export interface ShellRequest {
  facts: StarterFacts
  /** The job as pbs_mom stored it (mom_priv/jobs/<jobid>.JB). */
  job: RunningJob
  /** `[shell, ...rest]` of the job shell, or a task's argv, as pbs_mom passed them. */
  argv: string[]
  env: NodeJS.ProcessEnv
  /** Told once the job shell or task has started: the starter's own work is done (its metrics). */
  started?: () => void
}

/**
 * `qsub -v CBATCH_IMAGE` cannot choose the image: the prologue that makes the container
 * never sees the job's variables (pbs_mom writes its job file only after the prologue). A
 * job that asks that way is told so, rather than run in another image than it asked for.
 */
export function checkImage(container: Pick<ContainerDetails, 'image' | 'labels'>, asked: string | undefined): void {
  // A signed image runs by its digest; the job named it as its queue granted it.
  const names = [container.image, labelOf(container.labels, LABEL.image)].filter(n => n !== undefined)
  if (asked === undefined || names.some(n => asked === n || ImageReference.of(asked).completed === ImageReference.of(n).completed)) return
  throw new PolicyError(`the job asked for image ${asked} with CBATCH_IMAGE, which cannot choose the image; `
    + `its container runs ${container.image}. Ask with a #CBATCH image= line in the job script`)
}

/** What pbs_mom's environment claims must be what its job file says. */
export function checkClaims(facts: StarterFacts, job: RunningJob): void {
  if (facts.queue !== undefined && facts.queue !== job.queue) {
    throw new PolicyError(`job ${job.jobId} is in queue ${job.queue}, not ${facts.queue}`)
  }
  if (facts.user !== undefined && facts.user !== job.user) {
    throw new PolicyError(`job ${job.jobId} belongs to ${job.user}, not ${facts.user}`)
  }
}

/** The container the job shell must run in. */
export async function containerForShell(engine: ContainerEngine, jobId: string, momPriv: string): Promise<ContainerDetails> {
  const found = await findJobContainer(engine, jobId, momPriv)
  if (!found) throw new ContainerNotFoundError(`no container for job ${jobId}: its prologue did not run or failed`)
  return found
}

/** Runs the job shell in the job's container; resolves with its exit status. */
export async function runInContainer(engine: ContainerEngine, container: ContainerDetails, req: ShellRequest,
  stdio: Stdio = process, signals: NodeJS.EventEmitter = process): Promise<number> {
  checkContainer(container, req)
  const { session, terminal } = await openShell(engine, container, req, stdio)
  const size = stdio.stdout as WriteStream
  const resize = () => {
    if (size.rows && size.columns) session.resize(size.rows, size.columns).catch(() => undefined)
  }
  if (terminal) {
    terminal.setRawMode(true) // keystrokes, ^C included, go to the job's terminal as they are
    resize()
    signals.on('SIGWINCH', resize)
  }
  const relay = relaySignals(engine, container, session, signals)
  const cput = enforceCput(container, stdio.stderr, relay.forward)
  const orphaned = initGone(container.pid)
  let status: number
  try {
    session.demux(stdio.stdout, stdio.stderr)
    // The job shell reads its script line from stdin. First it takes pbs_mom's umask (0077),
    // which an exec in a container would not have (any shell understands it); and with
    // `qsub -j oe` it sends its stderr where its stdout goes, so the lines keep their order
    // (the engine's two streams would not).
    if (req.facts.task === 1 && !terminal) session.stream.write(prelude(req.argv[0], stdio, directOutput(container.pid)))
    stdio.stdin.pipe(session.stream, { end: true })
    req.started?.()
    status = await jobEnded(engine, container, session, orphaned.gone, stdio.stderr)
  } finally {
    orphaned.stop()
    cput.stop()
    relay.stop()
    signals.off('SIGWINCH', resize)
    terminal?.setRawMode(false)
    stdio.stdin.unpipe(session.stream)
    // A terminal never ends by itself: let go of it, or the starter would wait on it.
    terminal?.pause()
  }
  // The job shell died of a signal the starter passed on (qdel, walltime, cput): the starter
  // dies of it too, so TORQUE shows 256+N, as for a job shell of its own.
  if (relay.passedOn.has(status - 128)) process.kill(process.pid, Object.entries(constants.signals).find(([, n]) => n === status - 128)![0] as NodeJS.Signals)
  return status
}

/**
 * The prologue, as root, labelled the container with the job, its queue and its owner's
 * name, uid and gid; pbs_mom wrote the job file. Both must agree, and the job shell or task
 * runs as the labels say. No lookup of the owner here: the prologue's is the job's.
 */
function checkContainer(container: ContainerDetails, { job, env }: ShellRequest): void {
  const { labels } = container
  if (labels[LABEL.job] !== job.jobId || labels[LABEL.queue] !== job.queue || labels[LABEL.user] !== job.user
    || labels[LABEL.uid] !== String(job.uid) || !/^\d+$/.test(labels[LABEL.gid] ?? '')) {
    throw new PolicyError(`the container of job ${job.jobId} does not belong to ${job.user}`)
  }
  if (!container.running) throw new ContainerStoppedError(`the container of job ${job.jobId} is not running (${container.state})`)
  checkImage(container, env.CBATCH_IMAGE)
}

type Session = Awaited<ReturnType<ContainerEngine['exec']>>

/** The job shell or task, exec'd as its owner; with a terminal of its own when pbs_mom gave the starter one (qsub -I). */
async function openShell(engine: ContainerEngine, container: ContainerDetails, { facts, argv, env }: ShellRequest, stdio: Stdio):
  Promise<{ session: Session; terminal?: ReadStream }> {
  const { labels } = container
  const [command, ...rest] = argv
  // Only the job shell falls back to another shell; a task runs what it named, or fails.
  const fallback = facts.task === 1 ? labelOf(labels, LABEL.shellFallback) : undefined
  const usable = !fallback || await engine.pathExists(container.id, command) ? command : fallback
  const terminal = (stdio.stdin as ReadStream).isTTY ? stdio.stdin as ReadStream : undefined
  const session = await engine.exec(container.id, {
    // The container's entrypoint (none unless its queue runs the image's) wraps the job too.
    cmd: [...container.entrypoint, usable, ...rest],
    env: Object.entries(visibleDevicesInside(env, labelOf(labels, LABEL.gpus))).map(([k, v]) => `${k}=${v}`),
    workingDir: facts.workDir,
    user: `${labels[LABEL.uid]}:${labels[LABEL.gid]}`,
    tty: terminal !== undefined,
  })
  return { session, terminal }
}

/**
 * Passes the signals pbs_mom and terminals send on to the job. The exec'd shell leads its
 * own session (runc makes it one): every process of that session gets them, as pbs_mom
 * itself would signal them on the host. `passedOn`: the signals it passed on, by number.
 */
function relaySignals(engine: ContainerEngine, container: ContainerDetails, session: Session, signals: NodeJS.EventEmitter):
  { forward: (signal: NodeJS.Signals) => void; passedOn: Set<number>; stop(): void } {
  let pid: Promise<number> | undefined
  const execPid = () => (pid ??= session.inspect().then(i => i.pid))
  const passedOn = new Set<number>()
  const forward = (signal: NodeJS.Signals) => {
    passedOn.add(constants.signals[signal])
    execPid().then(p => signalSession(p, signal, { container: engine.cgroupNames(container.id) })).catch(() => undefined)
  }
  for (const s of FORWARDED_SIGNALS) signals.on(s, forward)
  return { forward, passedOn, stop: () => FORWARDED_SIGNALS.forEach(s => signals.off(s, forward)) }
}

/** The job's exit status, once its stream ends or its container went (`orphaned`); the owner is told of a kill by the kernel. */
async function jobEnded(engine: ContainerEngine, container: ContainerDetails, session: Session, orphaned: Promise<void>, stderr: Writable): Promise<number> {
  const ended = new Promise<void>((resolve, reject) => {
    session.stream.on('end', resolve)
    session.stream.on('close', resolve)
    session.stream.on('error', reject)
  })
  if (await Promise.race([ended.then(() => false), orphaned.then(() => true)])) {
    // The job went with its container; the engine would keep its stream open for ever.
    ended.catch(() => undefined)
    session.stream.destroy()
    const oom = (await engine.inspect(container.id).catch(() => undefined))?.oomKilled
    stderr.write(oom ? 'cbatch: job killed: out of memory\n' : 'cbatch: job killed: its container ended\n')
    return 128 + constants.signals.SIGKILL
  }
  const status = await exitStatus(session)
  // SIGKILLed with an OOM kill in its cgroup: the kernel ended the job, tell its owner why.
  if (status === 128 + constants.signals.SIGKILL && oomKills(container.pid) > 0) {
    stderr.write(`cbatch: job killed: out of memory${memoryLimit(container.pid)}\n`)
  }
  return status
}

/** The job shell's redirection into its mounted output files; none (the starter passes its output on) when they cannot be found. */
function directOutput(pid: number): string | undefined {
  try {
    return redirection(containerFiles(pid).pid)
  } catch {
    return undefined
  }
}

/** How long an exec's stream may stay open once its container's init is gone. */
export const ORPHANED_STREAM_MS = 2000

/**
 * `gone` resolves when the container's init (its host pid, told from a later process of
 * that pid by its start time) has been gone ORPHANED_STREAM_MS. Under runc the exec's stream
 * ends first (the kernel kills what was in the container); under gVisor a sandbox the kernel
 * killed (out of memory) takes the job with it, but the engine never ends the exec's stream.
 */
function initGone(pid: number): { gone: Promise<void>; stop(): void } {
  const startedAt = (): number | undefined => {
    try {
      return startTimeOf(pid)
    } catch {
      return undefined
    }
  }
  const first = startedAt()
  let poll: NodeJS.Timeout | undefined
  let grace: NodeJS.Timeout | undefined
  const gone = new Promise<void>(resolve => {
    if (first === undefined) return // checked running just before: never judged gone
    poll = setInterval(() => {
      if (startedAt() === first) return
      clearInterval(poll)
      grace = setTimeout(resolve, ORPHANED_STREAM_MS)
    }, 500)
  })
  return { gone, stop: () => { clearInterval(poll); clearTimeout(grace) } }
}

/** How often the job's CPU time is read against its `cput` limit. */
export const CPUT_POLL_MS = 2000
/** pbs_mom's default kill_delay: SIGTERM, then SIGKILL this much later. */
const KILL_DELAY_MS = 2000

/**
 * pbs_mom counts `cput` over the processes of the starter's session only, never a
 * container's: the starter enforces it on the container's cgroup, with pbs_mom's words.
 */
function enforceCput(container: ContainerDetails, stderr: Writable, signal: (s: NodeJS.Signals) => void): { stop(): void } {
  // No cput asked: the label is empty (Number('') would be a limit of 0).
  const label = labelOf(container.labels, LABEL.cput)
  const limit = label === undefined ? NaN : Number(label)
  if (!(limit >= 0)) return { stop: () => undefined }
  let kill: NodeJS.Timeout | undefined
  const poll = setInterval(() => {
    let used: number
    try {
      used = readUsage(container.pid).cpu.totalSeconds
    } catch {
      return // the container is ending
    }
    if (used <= limit) return
    clearInterval(poll)
    stderr.write(`=>> PBS: job killed: cput ${Math.round(used)} exceeded limit ${limit}\n`)
    signal('SIGTERM')
    kill = setTimeout(() => signal('SIGKILL'), KILL_DELAY_MS)
  }, CPUT_POLL_MS)
  return { stop: () => { clearInterval(poll); clearTimeout(kill) } }
}

/**
 * Lines the job shell runs before pbs_mom's script line: pbs_mom's umask; then its output
 * straight into the job's files when they are mounted (output.ts), else with -j oe its
 * stderr into its stdout. Bourne-family shells only for redirections (csh has no `exec >>`).
 */
function prelude(shell: string, stdio: Stdio, direct: string | undefined): string {
  const lines = [`umask ${ownUmask()}`]
  if (!/csh$/.test(shell)) {
    if (direct) lines.push(direct)
    else if (sameFile(stdio.stdout, stdio.stderr)) lines.push('exec 2>&1')
  }
  return lines.map(l => `${l}\n`).join('')
}

/** Whether two of the starter's streams are one open file (`qsub -j oe`: pbs_mom opens the output once). */
function sameFile(a: Writable, b: Writable): boolean {
  const fd = (s: Writable) => (s as unknown as { fd?: number }).fd
  if (fd(a) === undefined || fd(b) === undefined) return false
  return sameObject(fstatSync(fd(a)!), fstatSync(fd(b)!))
}

/** This process's umask, as pbs_mom set it (/proc: reading it with process.umask() would change it). */
function ownUmask(): string {
  return /^Umask:\s*(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0077'
}

function memoryLimit(pid: number): string {
  try {
    const limit = readUsage(pid).memory.limitBytes
    return limit ? ` (limit ${formatBytes(limit)})` : ''
  } catch {
    return ''
  }
}

async function exitStatus(session: Session): Promise<number> {
  // The stream can end a moment before the engine records the exit.
  for (let attempt = 0; ; attempt++) {
    const info = await session.inspect()
    if (!info.running && info.exitCode !== null) return info.exitCode
    if (attempt >= 50) throw new EngineError('the engine never reported the exit status of the job shell')
    await new Promise(r => setTimeout(r, 20))
  }
}

const PRLIMIT = '/usr/bin/prlimit'

/**
 * Runs the job shell or task on the host as its owner (queues cbatch does not manage), as
 * pbs_mom would without cbatch. The starter first becomes the owner itself (groups, gid,
 * uid: nothing of it runs as root afterwards), so the job's environment only ever reaches
 * the owner's processes, and its working directory is entered with the owner's rights.
 */
export async function runNatively(req: ShellRequest & { owner: Identity; limits: Rlimits }, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { owner, facts, job } = req
  if (owner.uid !== job.uid) {
    throw new IdentityError(`${job.user} is uid ${owner.uid} on this node, but pbs_mom runs job ${job.jobId} as uid ${job.uid}`)
  }
  becomeOwner(owner)
  try {
    if (!statSync(facts.workDir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' })
    accessSync(facts.workDir, fsConstants.X_OK)
  } catch (err) {
    throw new JobFileError(`cannot enter the job's working directory ${facts.workDir} (${(err as NodeJS.ErrnoException).code})`)
  }
  // The job's limits, as pbs_mom set them on the starter, back on the job (the owner may lower them).
  const restore = restoringOptions(req.limits, ownLimits())
  const [command, ...rest] = restore.length ? [PRLIMIT, ...restore, '--', ...req.argv] : req.argv
  const child = spawn(command, rest, { stdio: 'inherit', cwd: facts.workDir, env: req.env })
  // pbs_mom signals the whole session, the shell included: the starter only has to outlive it.
  const ignore = () => undefined
  for (const s of FORWARDED_SIGNALS) signals.on(s, ignore)
  child.once('spawn', () => req.started?.())
  let signal: NodeJS.Signals | null
  let code: number | null
  try {
    [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (c, s) => resolve([c, s]))
    })
  } finally {
    for (const s of FORWARDED_SIGNALS) signals.off(s, ignore)
  }
  // A shell killed by signal N shows in TORQUE as 256+N when its starter dies of it too.
  if (signal) process.kill(process.pid, signal)
  return code ?? 128 + constants.signals[signal!]
}

/** Drops every privilege for good: supplementary groups, then gid, then uid (real, effective, saved). */
function becomeOwner(owner: Identity): void {
  process.setgroups!(owner.groups)
  process.setgid!(owner.gid)
  process.setuid!(owner.uid)
  if (process.getuid!() !== owner.uid || process.geteuid!() !== owner.uid) throw new IdentityError(`cannot become ${owner.name}`)
}
