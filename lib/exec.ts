// The job starter's work: run the job shell in the job's container (or natively for
// queues cbatch does not manage), wire stdio through, forward signals, return the status.
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { constants } from 'node:os'
import type { Readable, Writable } from 'node:stream'
import type { ReadStream, WriteStream } from 'node:tty'
import { oomKills, readUsage } from './cgroup.ts'
import { findJobContainer, LABEL } from './container.ts'
import { formatBytes } from './resources.ts'
import type { ContainerDetails, Engine } from './engine.ts'
import { ContainerNotFoundError, PolicyError } from './errors.ts'
import type { Identity } from './identity.ts'
import type { StarterFacts } from './torque.ts'

/** Signals pbs_mom (qdel, walltime) and terminals send that the job must see. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGCONT'] as const

export interface Stdio {
  stdin: Readable
  stdout: Writable
  stderr: Writable
}

export interface ShellRequest {
  facts: StarterFacts
  /** `[shell, ...rest]` as pbs_mom passed them to the starter. */
  shellArgv: string[]
  env: NodeJS.ProcessEnv
}

/** The container the job shell must run in. */
export async function containerForShell(engine: Engine, jobId: string): Promise<ContainerDetails> {
  const found = await findJobContainer(engine, jobId)
  if (!found) throw new ContainerNotFoundError(`no container for job ${jobId}: its prologue did not run or failed`)
  return found
}

/** Runs the job shell in the job's container; resolves with its exit status. */
export async function runInContainer(engine: Engine, container: ContainerDetails, req: ShellRequest,
  stdio: Stdio = process, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { facts } = req
  // The prologue, as root, labelled the container with the job and its owner's name and uid
  // (looked up through NSS) and made it run as that uid; pbs_mom set PBS_JOBID and USER.
  // All must agree. No second lookup: the prologue's is the job's.
  const uid = container.labels[LABEL.uid]
  if (container.labels[LABEL.job] !== facts.jobId || container.labels[LABEL.user] !== facts.user
    || !uid || !container.user.startsWith(`${uid}:`)) {
    throw new PolicyError(`the container of job ${facts.jobId} does not belong to ${facts.user}`)
  }
  if (!container.running) throw new ContainerNotFoundError(`the container of job ${facts.jobId} is not running (${container.state})`)

  const [shell, ...rest] = req.shellArgv
  const fallback = container.labels[LABEL.shellFallback]
  const usable = !fallback || await engine.pathExists(container.id, shell) ? shell : fallback
  // Interactive jobs (qsub -I) get a terminal from pbs_mom: the job shell gets one too.
  const terminal = (stdio.stdin as ReadStream).isTTY ? stdio.stdin as ReadStream : undefined
  const session = await engine.exec(container.id, {
    cmd: [usable, ...rest],
    env: Object.entries(req.env).map(([k, v]) => `${k}=${v}`),
    workingDir: facts.workDir,
    user: container.user,
    tty: terminal !== undefined,
  })
  const size = stdio.stdout as WriteStream
  const resize = () => {
    if (size.rows && size.columns) session.resize(size.rows, size.columns).catch(() => undefined)
  }
  if (terminal) {
    terminal.setRawMode(true) // keystrokes, ^C included, go to the job's terminal as they are
    resize()
    signals.on('SIGWINCH', resize)
  }

  // The exec'd shell leads its own session (runc makes it one): signal every process of
  // that session, as pbs_mom itself would on the host.
  let pid: Promise<number> | undefined
  const execPid = () => (pid ??= session.inspect().then(i => i.pid))
  const forward = (signal: NodeJS.Signals) => {
    execPid().then(p => signalSession(p, signal)).catch(() => undefined)
  }
  for (const s of FORWARDED_SIGNALS) signals.on(s, forward)
  try {
    const ended = new Promise<void>((resolve, reject) => {
      session.stream.on('end', resolve)
      session.stream.on('close', resolve)
      session.stream.on('error', reject)
    })
    session.demux(stdio.stdout, stdio.stderr)
    stdio.stdin.pipe(session.stream, { end: true })
    await ended
    const status = await exitStatus(session)
    // SIGKILLed with an OOM kill in its cgroup: the kernel ended the job, tell its owner why.
    if (status === 128 + constants.signals.SIGKILL && oomKills(container.pid) > 0) {
      stdio.stderr.write(`cbatch: job killed: out of memory${memoryLimit(container.pid)}\n`)
    }
    return status
  } finally {
    for (const s of FORWARDED_SIGNALS) signals.off(s, forward)
    signals.off('SIGWINCH', resize)
    terminal?.setRawMode(false)
    stdio.stdin.unpipe(session.stream)
    // A terminal never ends by itself: let go of it, or the starter would wait on it.
    terminal?.pause()
  }
}

function memoryLimit(pid: number): string {
  try {
    const limit = readUsage(pid).memory.limitBytes
    return limit ? ` (limit ${formatBytes(limit)})` : ''
  } catch {
    return ''
  }
}

async function exitStatus(session: Awaited<ReturnType<Engine['exec']>>): Promise<number> {
  // The stream can end a moment before the engine records the exit.
  for (let attempt = 0; ; attempt++) {
    const info = await session.inspect()
    if (!info.running && info.exitCode !== null) return info.exitCode
    if (attempt >= 50) throw new ContainerNotFoundError('the job shell\'s exit status never arrived from the engine')
    await new Promise(r => setTimeout(r, 20))
  }
}

/** Sends `signal` to every process whose session id is `sid` (host pids). */
export function signalSession(sid: number, signal: NodeJS.Signals, proc = '/proc'): number {
  if (!(sid > 1)) return 0
  let sent = 0
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (sessionOf(readFileSync(`${proc}/${entry}/stat`, 'utf8')) !== sid) continue
      process.kill(Number(entry), signal)
      sent++
    } catch {
      // The process ended meanwhile.
    }
  }
  return sent
}

/** Session id from /proc/<pid>/stat (field 6; the command name may hold spaces and parens). */
export function sessionOf(stat: string): number {
  return Number(statFields(stat)[3])
}

/** Parent pid from /proc/<pid>/stat (field 4). */
export function parentOf(stat: string): number {
  return Number(statFields(stat)[1])
}

/** The fields of /proc/<pid>/stat after the command name, from field 3 (state) on. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/**
 * Runs the job shell on the host as its owner (queues cbatch does not manage). The starter
 * runs as root: setpriv drops to the owner's uid, gid and all their groups first.
 */
export async function runNatively(req: ShellRequest & { owner: Identity }, signals: NodeJS.EventEmitter = process): Promise<number> {
  const { owner, facts } = req
  const child = spawn('/usr/bin/setpriv', [
    `--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--', ...req.shellArgv,
  ], { stdio: 'inherit', cwd: facts.workDir, env: req.env })
  // pbs_mom signals the whole session, the shell included: the starter only has to outlive it.
  const ignore = () => undefined
  for (const s of FORWARDED_SIGNALS) signals.on(s, ignore)
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject)
      child.on('exit', (code, signal) => resolve(code ?? 128 + constants.signals[signal!]))
    })
  } finally {
    for (const s of FORWARDED_SIGNALS) signals.off(s, ignore)
  }
}
