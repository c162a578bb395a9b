// What a job makes root hold on a node. Every job shell and TM task has a root starter for
// its whole life (Node, tens of MiB, outside the job's container and its limits), and a job
// may start tasks at will (pbsdsh, tm_spawn). So each starter registers in a directory of
// root's, one per job and pbs_mom, and refuses to run once the job already has its queue's
// `maxTasks` live starters there. Register first, then count: two starters racing for the
// last place may both be refused, never both let in.
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, rmdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PolicyError } from '../errors.ts'
import { assertRootControlled } from '../host/trusted.ts'
import { startTimeOf } from '../host/proc.ts'

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

/**
 * Registers this process as one of the job's starters on this mom; returns how to let go.
 * Throws PolicyError when the job already has `max` live ones.
 */
export function claimTaskPlace(jobId: string, momPriv: string, max: number, dir = TASKS_DIR): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  assertRootControlled(dir, 'task directory', { strict: true })
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
    throw new PolicyError(`job ${jobId} already runs ${running - 1} tasks on this node, the most its queue allows (maxTasks ${max})`)
  }
  return release
}
