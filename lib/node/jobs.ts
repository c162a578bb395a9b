// The job containers on this node now, for its operator (`cbatch ps`): whose, which queue
// and image, in what state, and what they use, read from their cgroups (no engine stats
// call), which pbs_mom made it and whether that mom still knows the job.
import { LABEL, labelOf } from '../engine/labels.ts'
import type { ContainerEngine } from '../engine/engine.ts'
import { readUsage } from '../host/cgroup.ts'
import { jobGone } from '../torque/jobfile.ts'

export interface NodeJob {
  job: string
  user: string
  queue: string
  image: string
  container: string
  state: string
  /** Seconds since the container was made. */
  ageSeconds: number
  /** CPU seconds used so far, and memory in use now; absent when the container is not running. */
  cpuSeconds?: number
  memoryBytes?: number
  memoryLimitBytes?: number
  /** mom_priv of the pbs_mom that made it (`cbatch.mom`); absent on containers made before that label. */
  mom?: string
  /** That pbs_mom (else the one asked about) has the job's file (.JB, or .JC mid-save): false for an orphan (its `cbatch gc` removes those). */
  knownToMom: boolean
}

export async function nodeJobs(engine: Pick<ContainerEngine, 'findByLabel' | 'inspect'>, momPriv: string, now = new Date()): Promise<NodeJob[]> {
  const containers = await engine.findByLabel(LABEL.job)
  const details = await Promise.all(containers.map(c => engine.inspect(c.id)))
  // Absent on two looks (jobfile.ts jobGone): one can fall inside a job_save of a live job.
  const gone = await Promise.all(containers.map(c => jobGone(labelOf(c.labels, LABEL.mom) ?? momPriv, c.labels[LABEL.job])))
  return containers.map((c, i) => {
    const d = details[i]
    const job = c.labels[LABEL.job]
    let usage
    try {
      usage = d?.running ? readUsage(d.pid) : undefined
    } catch {
      usage = undefined // it stopped meanwhile
    }
    return {
      job, user: labelOf(c.labels, LABEL.user) ?? '?', queue: labelOf(c.labels, LABEL.queue) ?? '?', image: d?.image ?? '?', container: c.name,
      state: c.state, ageSeconds: Math.max(0, Math.round((now.getTime() - c.created.getTime()) / 1000)),
      cpuSeconds: usage?.cpu.totalSeconds, memoryBytes: usage?.memory.currentBytes, memoryLimitBytes: usage?.memory.limitBytes,
      mom: labelOf(c.labels, LABEL.mom),
      knownToMom: !gone[i],
    }
  })
}
