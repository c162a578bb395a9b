// Orphans: containers of jobs this pbs_mom no longer knows (neither .JB nor .JC in
// mom_priv/jobs, twice: jobfile.ts jobFilesGone),
// left by an epilogue that could not reach the engine, a crash, or a killed prologue; and
// the small files cbatch keeps in mom_priv for such jobs (account files, refusal records).
// Several moms may share one engine (multi-mom nodes, `--pbs-home` of another): only the
// containers this mom's prologues made (their `cbatch.mom` label) are ever this mom's to judge.
import { readdirSync, realpathSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { LABEL } from '../engine/labels.ts'
import type { ContainerEngine, JobContainer } from '../engine/engine.ts'
import { jobFilesGone, jobGone, jobKnown } from '../torque/jobfile.ts'

export interface GcOptions {
  /** `$PBS_HOME/mom_priv`: where pbs_mom keeps the jobs it knows. */
  momPriv: string
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
  // Only containers carrying cbatch's label, made by this mom, are ever looked at.
  const ours = isThisMom(options.momPriv)
  const listed = await engine.findByLabel(LABEL.job)
  const suspects = listed
    .filter(c => {
      if (c.labels[LABEL.mom] === undefined) options.onUnlabelled?.(c)
      return ours(c.labels[LABEL.mom])
    })
    .filter(c => !jobKnown(options.momPriv, c.labels[LABEL.job]))
    .filter(c => now - c.created.getTime() >= options.graceSeconds * 1000)
  // One look can fall inside a job_save of a live job: only a job gone on a second look is.
  const gone = await Promise.all(suspects.map(c => jobGone(options.momPriv, c.labels[LABEL.job])))
  const orphans = suspects.filter((_, i) => gone[i])
  if (!options.dryRun) {
    await Promise.all(orphans.map(c => engine.remove(c.id)))
    // Listed again only if that changed it: the prologue's every engine call is on the job's path.
    const live = new Set((orphans.length ? await engine.findByLabel(LABEL.job) : listed).map(c => c.name))
    await removeLeftoverFiles(options.momPriv, now - options.graceSeconds * 1000, {
      'cbatch-accounts': name => live.has(name), // named after the job's container
      'cbatch-refused': async prefix => !await jobFilesGone(options.momPriv, prefix), // named after the job's file prefix
    })
  }
  return orphans
}

/**
 * Whether a container's `cbatch.mom` label names this mom's mom_priv: the same directory,
 * however either path reaches it (links, `//`). Unlabelled or gone: not this mom's.
 */
function isThisMom(momPriv: string): (label: string | undefined) => boolean {
  const real = (path: string) => {
    try {
      return realpathSync(path)
    } catch {
      return undefined
    }
  }
  const own = real(momPriv) ?? momPriv
  return label => label !== undefined && (label === momPriv || real(label) === own)
}

/** Removes entries older than `before` (ms) of cbatch's directories in mom_priv whose job is gone. */
async function removeLeftoverFiles(momPriv: string, before: number,
  inUse: Record<string, (name: string) => boolean | Promise<boolean>>): Promise<void> {
  for (const [dir, used] of Object.entries(inUse)) {
    let names: string[]
    try {
      names = readdirSync(join(momPriv, dir))
    } catch {
      continue // none made yet
    }
    const old = names.filter(name => statSync(join(momPriv, dir, name)).mtimeMs < before)
    const kept = await Promise.all(old.map(name => used(name)))
    old.filter((_, i) => !kept[i]).forEach(name => rmSync(join(momPriv, dir, name), { recursive: true, force: true }))
  }
}
