// A sister's share of the job. prologue.parallel runs before the sister knows where the
// job's slots are, so a container whose node spec chunks differ starts with the smallest
// (torque/nodes.ts); the job file pbs_mom saves right after it says the real share.
import { availableParallelism, totalmem } from 'node:os'
import { LABEL, labelOf } from '../engine/labels.ts'
import type { ContainerDetails, ContainerEngine, LimitsUpdate } from '../engine/engine.ts'
import type { Config } from '../policy/config.ts'
import { containerLimits } from '../policy/resources.ts'
import type { RunningJob } from '../torque/job.ts'

/**
 * A sister's container, sized at first by the smallest chunk of the node spec (its share was
 * not known yet: pbs_server hands chunks out in any order), gets its real share from the job
 * file pbs_mom saved after prologue.parallel, whose exec_host says where the job's slots are
 * (torque/nodes.ts). Each of the job's starters there does it before it runs a task (the
 * first one that matters); returns the limits the container now has.
 */
export async function resizeSister(job: RunningJob, container: ContainerDetails, config: Config, engine: ContainerEngine): Promise<LimitsUpdate | undefined> {
  const policy = config.queues.get(job.queue)
  if (!policy || !job.execHost || labelOf(container.labels, LABEL.provisional) !== 'true' || labelOf(container.labels, LABEL.job) !== job.jobId) return undefined
  const share = job.shareOf(Number(labelOf(container.labels, LABEL.node) ?? 0))
  const limits = containerLimits(job.request(), policy.limits, {
    ...share, hostMemory: totalmem(), hostCpus: availableParallelism(),
    torqueCpuset: policy.limits.cpu === 'cpuset' ? job.cpuset() : undefined,
  })
  await engine.updateLimits(container.id, limits)
  return limits
}
