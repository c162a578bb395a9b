// A job the prologue refused. pbs_mom copies no output back when a prologue exits 1 (the
// owner only gets "Job cannot be executed"), so the prologue instead writes its reason
// into the job's .ER (its stderr), records the refusal here and exits 0; the job starter
// then refuses to run the job, and pbs_mom delivers the .ER with the reason. Without the
// record the starter refuses all the same (the job has no container): it only says less.
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { replaceFile } from '../host/trusted.ts'
import { join } from 'node:path'
import type { BatchNode } from '../torque/mom.ts'

/** Root's own directory in the mom's state directory for the records, named by job key (gc asks whether its job is gone). */
const recordDir = (batch: BatchNode) => join(batch.stateDir, 'cbatch-refused')

export function recordRefusal(batch: BatchNode, jobId: string, reason: string): void {
  mkdirSync(recordDir(batch), { mode: 0o700, recursive: true })
  replaceFile(join(recordDir(batch), batch.jobKey(jobId)), reason, 0o600)
}

/** The reason the prologue refused the job, if it did. */
export function refusalOf(batch: BatchNode, jobId: string): string | undefined {
  try {
    return readFileSync(join(recordDir(batch), batch.jobKey(jobId)), 'utf8')
  } catch {
    return undefined
  }
}

export function clearRefusal(batch: BatchNode, jobId: string): void {
  rmSync(join(recordDir(batch), batch.jobKey(jobId)), { force: true })
}
