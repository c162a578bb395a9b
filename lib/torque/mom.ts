// The batch system's daemon on this node, as cbatch asks about its jobs beyond what it
// hands a hook: whether it still knows a job, whose a job shell's job is, and where its own
// state lies. Code above lib/torque/ asks these through BatchNode, never pbs_mom's files;
// a second batch system would be a second implementation.
import { dirname, join } from 'node:path'
import { jobFilePrefix, jobFilesGone, jobGone, jobKnown, readClaimedJob } from './jobfile.ts'
import { runningJob, type RunningJob } from './job.ts'

export interface BatchNode {
  /**
   * The daemon's own state directory, root's (pbs_mom's mom_priv): it tells this daemon from
   * others on the host (several moms may share one engine), and cbatch's per-job files live there.
   */
  readonly stateDir: string
  /** Where the daemon keeps the jobs' scripts: a job script is only ever read from there. */
  readonly scriptDir: string
  /** The daemon's home (PBS_HOME): never mounted into a job. */
  readonly home: string
  /** The job's name for files cbatch keeps of it: safe as a file name, and what keyGone asks about. */
  jobKey(jobId: string): string
  /** The daemon knows the job right now (one look: see jobGone before acting on its absence). */
  jobKnown(jobId: string): boolean
  /** The daemon no longer has the job: the only way cbatch may decide that a job is gone. */
  jobGone(jobId: string): Promise<boolean>
  /** jobGone for a job known by its jobKey only. */
  keyGone(key: string): Promise<boolean>
  /**
   * The job a job shell or task says it belongs to, as root recorded it: only when `secret`
   * is the one the daemon gave that job's processes (anyone can claim any job id).
   */
  claimedJob(jobId: string, secret: string | undefined): RunningJob
  /** The daemon whose state directory is `stateDir`: another mom of this host. */
  other(stateDir: string): BatchNode
}

/** The pbs_mom whose mom_priv is `momPriv`: its jobs are its files in mom_priv/jobs (jobfile.ts). */
export function pbsMom(momPriv: string): BatchNode {
  return {
    stateDir: momPriv,
    scriptDir: join(momPriv, 'jobs'),
    home: dirname(momPriv),
    // Array sub-jobs' ids carry brackets; their file prefix does not.
    jobKey: jobId => jobFilePrefix(jobId).replace(/\//g, '_').replace(/^\./, '_'),
    jobKnown: jobId => jobKnown(momPriv, jobId),
    jobGone: jobId => jobGone(momPriv, jobId),
    keyGone: key => jobFilesGone(momPriv, key),
    claimedJob: (jobId, secret) => runningJob(readClaimedJob(momPriv, jobId, secret)),
    other: pbsMom,
  }
}
