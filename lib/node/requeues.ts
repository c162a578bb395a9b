// A mother superior whose prologue keeps requeueing jobs (its engine fails, the queue's registry
// is down) is a node pbs_sched feeds the same jobs to again and again: pbs_mom does not mark it
// down for a failing prologue (docs/torque-contract.md, "When a prologue fails"). So the
// prologue keeps the streak of jobs it requeued for a fault of the node here, a success ends
// it, and the node check reports a streak that says the node is at fault as an ERROR, which
// takes the node out of scheduling until the streak has aged (no job can end it on a node
// that is down).
//
// The node check's ERROR takes the node away from every user, so the streak counts jobs, not
// requeues, and owners as well: a node is declared faulty only once STREAK.jobs different
// jobs of at least STREAK.owners different owners were requeued here for a node fault, each
// within STREAK.holdMs of the last. A node fault hits whoever's job lands there; one job that
// keeps coming back, or any number of one owner's jobs, may be that owner's own doing (on
// purpose or not), and one owner must not be able to take a node out of scheduling for
// everyone. A node that fails only one owner's jobs keeps being sent them (each requeue waits
// engine.requeuePause first); the node check's own checks (engine, images, scratch) still
// speak for it. Which failures count at all is lib/job/prologue.ts `countsAgainstNode`.
//
// The ERROR line is public (pbsnodes shows it to every user): it says how many jobs and
// owners, never which, nor the failures' messages; those are in the node log, which root's
// prologue writes as it counts each requeue.
import { closeSync, constants, fstatSync, openSync, readSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { replaceFile } from '../host/trusted.ts'
import type { Logger } from '../log.ts'

/** Each mom's own streak (several may run on one host), in its mom_priv, root's. */
export const requeuesFile = (momPriv: string) => join(momPriv, 'cbatch-requeues.json')

/**
 * When the node check speaks: `jobs` different jobs of `owners` different owners requeued for a
 * node fault, each within `holdMs` of the last; it speaks for `holdMs` after the last. The file
 * keeps at most `kept` requeues, `perOwner` of each owner (one owner's flood of requeues cannot
 * push others' out), none older than `holdMs` before the last.
 */
export const STREAK = { jobs: 3, owners: 2, holdMs: 5 * 60_000, kept: 16, perOwner: 3 }

/** Longest file read, and longest job id, owner and reason kept: the file stays small. */
const MAX_BYTES = 64 * 1024
const MAX_FIELD = { job: 256, owner: 64, reason: 256 }

/** One job the prologue requeued for a fault of the node. */
export interface Requeue {
  /** pbs_mom's job id and owner (the prologue's arguments). */
  job: string
  owner: string
  /** The failure's message: root's file and node log only, never the node check's line. */
  reason: string
}

interface Entry extends Requeue {
  /** ISO time. */
  at: string
}

interface Options {
  now?: Date
  /** The node log, for a streak file that is not what root wrote. */
  log?: Pick<Logger, 'error' | 'info'>
}

/**
 * The streak as root wrote it: root's own regular file, opened without following a link, not
 * too big, in the format below. Anything else is treated as no streak at all (and logged): the
 * file only informs the node check, and one it cannot read must not keep the node down.
 */
function read(file: string, log: Options['log']): Entry[] {
  let text: string
  try {
    const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    try {
      const stat = fstatSync(fd)
      const problem = !stat.isFile() ? 'not a regular file'
        : stat.uid !== process.geteuid?.() ? 'not root\'s own'
          : stat.mode & 0o022 ? 'writable by others'
            : stat.size > MAX_BYTES ? `bigger than ${MAX_BYTES} bytes` : undefined
      if (problem) {
        log?.error(`requeue streak ${file} is ${problem}: treated as empty`)
        return []
      }
      const buffer = Buffer.alloc(stat.size)
      text = buffer.subarray(0, readSync(fd, buffer, 0, stat.size, 0)).toString('utf8')
    } finally {
      closeSync(fd)
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log?.error(`requeue streak ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): treated as empty`)
    return []
  }
  let entries: unknown
  try {
    entries = (JSON.parse(text) as { requeues?: unknown }).requeues
  } catch {
    entries = undefined
  }
  if (!Array.isArray(entries)) {
    // Also the one-object format of cbatch before streaks counted jobs: it is simply started over.
    log?.error(`requeue streak ${file} is not in the format cbatch writes: treated as empty`)
    return []
  }
  return entries.filter((e): e is Entry => typeof e === 'object' && e !== null
    && typeof e.job === 'string' && typeof e.owner === 'string' && typeof e.reason === 'string'
    && typeof e.at === 'string' && Number.isFinite(Date.parse(e.at)))
}

const time = (e: Entry) => Date.parse(e.at)

/** The streak as of `now`: requeues not from the future, each within holdMs of the last; empty once the last is older than holdMs. */
function current(entries: Entry[], now: Date): Entry[] {
  const past = entries.filter(e => time(e) <= now.getTime())
  const last = Math.max(...past.map(time))
  if (!past.length || now.getTime() - last > STREAK.holdMs) return []
  return past.filter(e => last - time(e) <= STREAK.holdMs)
}

/** How many different jobs and owners a streak holds. */
function tally(entries: Entry[]): { jobs: number; owners: number } {
  return { jobs: new Set(entries.map(e => e.job)).size, owners: new Set(entries.map(e => e.owner)).size }
}

/**
 * The prologue requeued `requeue.job` for a fault of the node; best effort (it only informs
 * the node check). Earlier requeues older than holdMs are dropped (a streak whose last requeue
 * is that old is over), as is the job's own earlier requeue (a job counts once), and the
 * file keeps the newest STREAK.kept, STREAK.perOwner of each owner.
 */
export function recordRequeue(momPriv: string, requeue: Requeue, { now = new Date(), log }: Options = {}): void {
  const file = requeuesFile(momPriv)
  try {
    const entry: Entry = {
      job: requeue.job.slice(0, MAX_FIELD.job),
      owner: requeue.owner.slice(0, MAX_FIELD.owner),
      reason: requeue.reason.slice(0, MAX_FIELD.reason),
      at: now.toISOString(),
    }
    const earlier = read(file, log).filter(e => e.job !== entry.job && time(e) <= now.getTime() && now.getTime() - time(e) <= STREAK.holdMs)
    const newestFirst = [entry, ...earlier.sort((a, b) => time(b) - time(a))]
    const perOwner = new Map<string, number>()
    const kept = newestFirst.filter(e => {
      const n = (perOwner.get(e.owner) ?? 0) + 1
      perOwner.set(e.owner, n)
      return n <= STREAK.perOwner
    }).slice(0, STREAK.kept).reverse()
    replaceFile(file, JSON.stringify({ requeues: kept }), 0o600)
    const { jobs, owners } = tally(kept)
    log?.info(`requeue of job ${entry.job} (owner ${entry.owner}) counted against this node: ${jobs} job${jobs > 1 ? 's' : ''} of ${owners} owner${owners > 1 ? 's' : ''} `
      + `in the streak; the node check reports ${STREAK.jobs} jobs of ${STREAK.owners} owners`)
  } catch (err) {
    // the node check then only sees what it checks itself
    log?.error(`cannot record the requeue in ${file}: ${(err as Error).message}`)
  }
}

/** A prologue made a job's container: the streak is over. */
export function clearRequeues(momPriv: string): void {
  rmSync(requeuesFile(momPriv), { force: true })
}

/**
 * What the node check says of the streak, if it shows a node fault: a line every user may
 * read (pbsnodes), so only counts; which jobs, whose, and why are in the node log.
 */
export function requeueProblem(momPriv: string, { now = new Date(), log }: Options = {}): string | undefined {
  const { jobs, owners } = tally(current(read(requeuesFile(momPriv), log), now))
  if (jobs < STREAK.jobs || owners < STREAK.owners) return undefined
  return `the prologue requeued ${jobs} jobs of ${owners} owners within ${STREAK.holdMs / 60_000} min for a fault of this node; see this node's cbatch log`
}
