// Orphans: containers of jobs this pbs_mom no longer knows (no mom_priv/jobs/<jobid>.JB),
// left by an epilogue that could not reach the engine, a crash, or a killed prologue.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { LABEL } from './container.ts'
import type { Engine, JobContainer } from './engine.ts'

export interface GcOptions {
  /** `$PBS_HOME/mom_priv`: where pbs_mom keeps the jobs it knows. */
  momPriv: string
  /** Containers younger than this are left alone: their prologue may still be running. */
  graceSeconds: number
  dryRun?: boolean
  now?: Date
}

/** True when pbs_mom still knows the job (its .JB file is there). */
function jobKnown(momPriv: string, jobId: string): boolean {
  return existsSync(join(momPriv, 'jobs', `${jobId}.JB`))
}

/** Removes orphaned job containers; returns those it removed (or would, with dryRun). */
export async function collectOrphans(engine: Engine, options: GcOptions): Promise<JobContainer[]> {
  const now = (options.now ?? new Date()).getTime()
  // Only containers carrying cbatch's label are ever looked at.
  const orphans = (await engine.findByLabel(LABEL.job))
    .filter(c => !jobKnown(options.momPriv, c.labels[LABEL.job]))
    .filter(c => now - c.created.getTime() >= options.graceSeconds * 1000)
  if (!options.dryRun) await Promise.all(orphans.map(c => engine.remove(c.id)))
  return orphans
}
