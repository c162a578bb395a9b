// The job containers on this node now, for its operator (`cbatch ps`): whose, which queue
// and image, in what state, and what they use, read from their cgroups (no engine stats
// call), with whether pbs_mom still knows the job.
import { LABEL } from '../engine/container.ts'
import type { ContainerEngine } from '../engine/engine.ts'
import { readUsage } from '../host/cgroup.ts'
import { jobFilePath } from '../torque/jobfile.ts'

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
  /** pbs_mom has the job's file: false for an orphan (`cbatch gc` removes those). */
  knownToMom: boolean
}

export async function nodeJobs(engine: Pick<ContainerEngine, 'findByLabel' | 'inspect'>, momPriv: string, now = new Date()): Promise<NodeJob[]> {
  const containers = await engine.findByLabel(LABEL.job)
  const details = await Promise.all(containers.map(c => engine.inspect(c.id)))
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
      job, user: c.labels[LABEL.user] ?? '?', queue: c.labels[LABEL.queue] ?? '?', image: d?.image ?? '?', container: c.name,
      state: c.state, ageSeconds: Math.max(0, Math.round((now.getTime() - c.created.getTime()) / 1000)),
      cpuSeconds: usage?.cpu.totalSeconds, memoryBytes: usage?.memory.currentBytes, memoryLimitBytes: usage?.memory.limitBytes,
      knownToMom: jobFilePath(momPriv, job) !== undefined,
    }
  })
}
