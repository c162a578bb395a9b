// What a job makes root hold on a node. Every job shell and TM task has a root starter for
// its whole life (Node, tens of MiB, outside the job's container and its limits), and a job
// may start tasks at will (pbsdsh, tm_spawn). So each starter registers in a directory of
// root's, one per job and pbs_mom, and refuses to run once the job already has its queue's
// `maxTasks` live starters there (never fewer than its processors on the node and one more:
// a job using all its cores through TM is never refused). Register first, then count: two
// starters racing for the last place may both be refused, never both let in. A starter that
// was killed leaves its entry: the next count drops it, and the epilogues collect what
// ended jobs left (collectTaskPlaces).
import { createHash } from 'node:crypto'
import { lstatSync, mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PolicyError } from '../errors.ts'
import { assertRootControlled, makeRootDir } from '../host/trusted.ts'
import { startTimeOf } from '../host/proc.ts'
import type { RunningJob } from '../torque/job.ts'

export const TASKS_DIR = '/run/cbatch/tasks'

/** A starter's entry: its pid and start time, so a reused pid is not taken for it. */
const entryOf = (pid: number) => `${pid}-${startTimeOf(pid)}`

function live(entry: string): boolean {
  const [pid, started] = entry.split('-')
  try {
    return String(startTimeOf(Number(pid))) === started
  } catch {
    return false
  }
}

/** The most starters a job may hold at once on a node, and why, for the message that refuses one more. */
export interface TaskLimit {
  max: number
  why: string
}

/**
 * A job's limit on this node: its queue's `maxTasks`, raised to the job's processors here
 * and one more (its job shell) where that is more, so a job that runs a task on each of
 * its cores is never refused. The processors are those pbs_server gave it: this node's
 * share of the job's exec_host in its job file (pbs_mom's, root's), `node` being this
 * node's number (its container's label); without one, the largest share of any node of the
 * job, which this node's cannot exceed. Never a value the job's environment claims.
 */
export function taskLimit(maxTasks: number, job: Pick<RunningJob, 'request' | 'slots'>, node?: number): TaskLimit {
  const ppn = processorsHere(job, node)
  if (ppn + 1 <= maxTasks) return { max: maxTasks, why: `maxTasks ${maxTasks}` }
  return { max: ppn + 1, why: `maxTasks ${maxTasks}, raised to its ${ppn} processors here and its job shell` }
}

function processorsHere(job: Pick<RunningJob, 'request' | 'slots'>, node: number | undefined): number {
  const parsed = <T>(read: () => T): T | undefined => {
    try {
      return read()
    } catch {
      return undefined
    }
  }
  const slots = parsed(job.slots)
  if (slots) {
    const here = node !== undefined ? slots[node] : undefined
    return here ?? Math.max(0, ...slots) // a node number it does not have: the largest share bounds it
  }
  // no exec_host yet, or not host/slots: the Resource_List then
  const request = parsed(job.request)
  return request ? Math.max(0, ...request.nodes.map(n => n.ppn), request.ncpus ?? 0, request.procs ?? 0) : 0
}

/**
 * Registers this process as one of the job's starters on this mom; returns how to let go.
 * Throws PolicyError when the job already has `limit.max` live ones.
 */
export function claimTaskPlace(jobId: string, momPriv: string, limit: TaskLimit | number, dir = TASKS_DIR): () => void {
  const { max, why } = typeof limit === 'number' ? { max: limit, why: `maxTasks ${limit}` } : limit
  // Judged before anything is made: no directory or link planted there is ever used.
  makeRootDir(dir, 'task directory')
  const jobDir = join(dir, createHash('sha256').update(`${momPriv}\0${jobId}`).digest('hex').slice(0, 32))
  const mine = join(jobDir, entryOf(process.pid))
  for (let tries = 0; ; tries++) {
    try {
      mkdirSync(jobDir, { recursive: true, mode: 0o700 })
      writeFileSync(mine, jobId, { flag: 'wx', mode: 0o600 })
      break
    } catch (err) {
      // The job's last starter removed the directory meanwhile: make it again.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || tries >= 3) throw err
    }
  }
  const release = () => {
    rmSync(mine, { force: true })
    try {
      rmdirSync(jobDir)
    } catch {
      // others of the job still run
    }
  }
  let running = 0
  for (const entry of readdirSync(jobDir)) {
    if (live(entry)) running++
    else rmSync(join(jobDir, entry), { force: true }) // a starter that was killed
  }
  if (running > max) {
    release()
    throw new PolicyError(`job ${jobId} already runs ${running - 1} tasks on this node, the most its queue allows (${why})`)
  }
  return release
}

/**
 * Removes the entries of starters that no longer run, and each job's directory left empty:
 * what starters killed before they let go leave behind (the epilogues call it, once each
 * job's starters are gone). Entries of live starters stay. A claim racing with it makes its
 * job's directory again (claimTaskPlace).
 */
export function collectTaskPlaces(dir = TASKS_DIR): void {
  if (!lstatSync(dir, { throwIfNoEntry: false })) return // no starter ran here yet
  assertRootControlled(dir, 'task directory', { strict: true })
  for (const name of readdirSync(dir)) {
    const jobDir = join(dir, name)
    if (!lstatSync(jobDir, { throwIfNoEntry: false })?.isDirectory()) continue // only root makes names here: none but job directories
    try {
      for (const entry of readdirSync(jobDir)) {
        if (!live(entry)) rmSync(join(jobDir, entry), { force: true })
      }
      rmdirSync(jobDir)
    } catch {
      // a starter of the job still runs, or its last one removed the directory meanwhile
    }
  }
}
