// Orphans: containers of jobs this pbs_mom no longer knows (no .JB in mom_priv/jobs),
// left by an epilogue that could not reach the engine, a crash, or a killed prologue.
import { LABEL } from '../engine/container.ts'
import type { ContainerEngine, JobContainer } from '../engine/engine.ts'
import { jobFilePath } from '../torque/jobfile.ts'

export interface GcOptions {
  /** `$PBS_HOME/mom_priv`: where pbs_mom keeps the jobs it knows. */
  momPriv: string
  /** Containers younger than this are left alone: their prologue may still be running. */
  graceSeconds: number
  dryRun?: boolean
  now?: Date
}

/** True when pbs_mom still knows the job (its .JB file is there, named as pbs_mom names it). */
function jobKnown(momPriv: string, jobId: string): boolean {
  return jobFilePath(momPriv, jobId) !== undefined
}

/** Removes orphaned job containers; returns those it removed (or would, with dryRun). */
export async function collectOrphans(engine: ContainerEngine, options: GcOptions): Promise<JobContainer[]> {
  const now = (options.now ?? new Date()).getTime()
  // Only containers carrying cbatch's label are ever looked at.
  const orphans = (await engine.findByLabel(LABEL.job))
    .filter(c => !jobKnown(options.momPriv, c.labels[LABEL.job]))
    .filter(c => now - c.created.getTime() >= options.graceSeconds * 1000)
  if (!options.dryRun) await Promise.all(orphans.map(c => engine.remove(c.id)))
  return orphans
}
