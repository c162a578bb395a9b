// Orphans: containers of jobs this pbs_mom no longer knows (BatchNode.jobGone), left by an
// epilogue that could not reach the engine, a crash, or a killed prologue; and the small
// files cbatch keeps in mom_priv for such jobs (account files, refusal records).
// Several moms may share one engine (multi-mom nodes, `--pbs-home` of another): only the
// containers this mom's prologues made (their `cbatch.mom` label) are ever this mom's to judge.
import { readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { LABEL } from '../engine/labels.ts'
import type { ContainerEngine, JobContainer } from '../engine/engine.ts'
import type { BatchNode } from '../torque/mom.ts'
import { isThisMom } from './container.ts'

export interface GcOptions {
  /** The pbs_mom whose jobs' containers are judged. */
  batch: BatchNode
  /** Containers younger than this are left alone: their prologue may still be running. */
  graceSeconds: number
  dryRun?: boolean
  now?: Date
  /**
   * Told of each job container left alone because no `cbatch.mom` label says which mom made
   * it (made by a cbatch before the label): whose it is cannot be known, so it is never removed.
   */
  onUnlabelled?: (container: JobContainer) => void
}

/** Removes orphaned job containers; returns those it removed (or would, with dryRun). */
export async function collectOrphans(engine: ContainerEngine, options: GcOptions): Promise<JobContainer[]> {
  const now = (options.now ?? new Date()).getTime()
  const { batch } = options
  // Only containers carrying cbatch's label, made by this mom, are ever looked at.
  const listed = await engine.findByLabel(LABEL.job)
  const suspects = listed
    .filter(c => {
      if (c.labels[LABEL.mom] === undefined) options.onUnlabelled?.(c)
      return isThisMom(c.labels, batch.stateDir)
    })
    .filter(c => !batch.jobKnown(c.labels[LABEL.job]))
    .filter(c => now - c.created.getTime() >= options.graceSeconds * 1000)
  // One look can fall inside a job_save of a live job: only a job gone on a second look is.
  const gone = await Promise.all(suspects.map(c => batch.jobGone(c.labels[LABEL.job])))
  const orphans = suspects.filter((_, i) => gone[i])
  if (!options.dryRun) {
    await Promise.all(orphans.map(c => engine.remove(c.id)))
    // Listed again only if that changed it: the prologue's every engine call is on the job's path.
    const live = new Set((orphans.length ? await engine.findByLabel(LABEL.job) : listed).map(c => c.name))
    await removeLeftoverFiles(batch.stateDir, now - options.graceSeconds * 1000, {
      'cbatch-accounts': name => live.has(name), // named after the job's container
      'cbatch-refused': async key => !await batch.keyGone(key), // named by the job's key (refusal.ts)
    })
  }
  return orphans
}

/** Removes entries older than `before` (ms) of cbatch's directories in mom_priv whose job is gone. */
async function removeLeftoverFiles(stateDir: string, before: number,
  inUse: Record<string, (name: string) => boolean | Promise<boolean>>): Promise<void> {
  for (const [dir, used] of Object.entries(inUse)) {
    let names: string[]
    try {
      names = readdirSync(join(stateDir, dir))
    } catch {
      continue // none made yet
    }
    const old = names.filter(name => statSync(join(stateDir, dir, name)).mtimeMs < before)
    const kept = await Promise.all(old.map(name => used(name)))
    old.filter((_, i) => !kept[i]).forEach(name => rmSync(join(stateDir, dir, name), { recursive: true, force: true }))
  }
}
