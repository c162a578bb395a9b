// A mother superior whose prologue keeps requeueing jobs (its engine fails, a registry is
// down) is a node pbs_sched feeds the same jobs to again and again: pbs_mom does not mark it
// down for a failing prologue (docs/torque-contract.md, "When a prologue fails"). So the
// prologue keeps its streak of requeues here, a success ends it, and the node check reports
// a streak that is long and recent as an ERROR, which takes the node out of scheduling until
// the streak has aged (no job can end it on a node that is down).
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { replaceFile } from '../host/trusted.ts'

/** Each mom's own streak (several may run on one host), in its mom_priv, root's. */
export const requeuesFile = (momPriv: string) => join(momPriv, 'cbatch-requeues.json')

/** Requeues in a row that make the node check speak, and how long it speaks after the last. */
export const STREAK = { count: 3, holdMs: 5 * 60_000 }

interface Streak {
  count: number
  /** ISO times. */
  since: string
  last: string
  reason: string
}

function read(file: string): Streak | undefined {
  try {
    const streak = JSON.parse(readFileSync(file, 'utf8')) as Streak
    return Number.isInteger(streak.count) && typeof streak.reason === 'string' ? streak : undefined
  } catch {
    return undefined
  }
}

/** The prologue requeued a job for `reason`; best effort (it only informs the node check). */
export function recordRequeue(momPriv: string, reason: string, now = new Date()): void {
  const file = requeuesFile(momPriv)
  try {
    const before = read(file)
    replaceFile(file, JSON.stringify({ count: (before?.count ?? 0) + 1, since: before?.since ?? now.toISOString(), last: now.toISOString(), reason }), 0o600)
  } catch {
    // the node check then only sees what it checks itself
  }
}

/** A prologue made a job's container: the streak is over. */
export function clearRequeues(momPriv: string): void {
  rmSync(requeuesFile(momPriv), { force: true })
}

/** What the node check says of the streak, if it is long and recent enough. */
export function requeueProblem(momPriv: string, now = new Date()): string | undefined {
  const streak = read(requeuesFile(momPriv))
  if (!streak || streak.count < STREAK.count || now.getTime() - Date.parse(streak.last) > STREAK.holdMs) return undefined
  return `the prologue requeued the last ${streak.count} jobs since ${streak.since}: ${streak.reason}`
}
