// The job containers on this node now, for its operator (`cbatch ps`): whose, which queue
// and image, in what state, and what they use, read from their cgroups (no engine stats
// call), which pbs_mom made it and whether that mom still knows the job.
import { LABEL, labelOf } from '../engine/labels.ts'
import type { ContainerEngine } from '../engine/engine.ts'
import { readUsage } from '../host/cgroup.ts'
import type { BatchNode } from '../torque/mom.ts'

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

/** The job containers on the node; `batch`: the pbs_mom asked about, whose are those without a `cbatch.mom` label. */
export async function nodeJobs(engine: Pick<ContainerEngine, 'findByLabel' | 'inspect'>, batch: BatchNode, now = new Date()): Promise<NodeJob[]> {
  const containers = await engine.findByLabel(LABEL.job)
  const details = await Promise.all(containers.map(c => engine.inspect(c.id)))
  // Asked of the mom that made it: several may share the engine.
  const gone = await Promise.all(containers.map(c => {
    const mom = labelOf(c.labels, LABEL.mom)
    return (mom ? batch.other(mom) : batch).jobGone(c.labels[LABEL.job])
  }))
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
