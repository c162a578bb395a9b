// A job the prologue refused. pbs_mom copies no output back when a prologue exits 1 (the
// owner only gets "Job cannot be executed"), so the prologue instead writes its reason
// into the job's .ER (its stderr), records the refusal here and exits 0; the job starter
// then refuses to run the job, and pbs_mom delivers the .ER with the reason. Without the
// record the starter refuses all the same (the job has no container): it only says less.
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { replaceFile } from '../host/trusted.ts'
import { join } from 'node:path'
import { jobFilePrefix } from '../torque/jobfile.ts'

/** Root's own directory in mom_priv for the records. */
function recordFile(momPriv: string, jobId: string): string {
  return join(momPriv, 'cbatch-refused', jobFilePrefix(jobId).replace(/\//g, '_').replace(/^\./, '_'))
}

export function recordRefusal(momPriv: string, jobId: string, reason: string): void {
  const file = recordFile(momPriv, jobId)
  mkdirSync(join(momPriv, 'cbatch-refused'), { mode: 0o700, recursive: true })
  replaceFile(file, reason, 0o600)
}

/** The reason the prologue refused the job, if it did. */
export function refusalOf(momPriv: string, jobId: string): string | undefined {
  try {
    return readFileSync(recordFile(momPriv, jobId), 'utf8')
  } catch {
    return undefined
  }
}

export function clearRefusal(momPriv: string, jobId: string): void {
  rmSync(recordFile(momPriv, jobId), { force: true })
}
