// The epilogue's work: what the job used, read before its container is removed.
import { hostname } from 'node:os'
import { basename } from 'node:path'
import { findJobContainer, LABEL } from '../engine/container.ts'
import type { ContainerEngine } from '../engine/engine.ts'
import { readUsage, type CgroupUsage } from '../host/cgroup.ts'
import type { EpilogueFacts } from '../torque/contract.ts'
import type { AccountingRecord } from './accounting.ts'

/**
 * Epilogue: what the job used, read before its container is removed, and its scratch
 * directory, to remove once that is recorded; undefined if the job had no container.
 */
export async function cleanupJob(facts: Pick<EpilogueFacts, 'jobId' | 'user' | 'queue'> & { exitStatus?: number; onlyContainer?: string },
  engine: ContainerEngine, now: () => Date = () => new Date()): Promise<{ record: AccountingRecord; scratchDir?: string } | undefined> {
  const container = await findJobContainer(engine, facts.jobId)
  // A sister's guard (hooks/prologue.ts) removes the container it guards, never a later try's.
  if (!container || (facts.onlyContainer !== undefined && container.id !== facts.onlyContainer)) return undefined
  const usage = container.running ? usageOf(container.pid) : undefined
  const [imageDigest] = await Promise.all([
    engine.imageDigest(container.imageId, container.image).catch(() => undefined),
    engine.remove(container.id),
  ])
  const end = now()
  const scratch = container.labels[LABEL.scratch]
  const record: AccountingRecord = {
    time: end.toISOString(),
    jobId: facts.jobId,
    user: container.labels[LABEL.user] ?? facts.user,
    queue: container.labels[LABEL.queue] ?? facts.queue,
    node: hostname(),
    nodeNumber: Number(container.labels[LABEL.node] ?? 0),
    container: container.name,
    image: container.image,
    imageDigest,
    exitStatus: facts.exitStatus,
    wallSeconds: Math.max(0, (end.getTime() - container.startedAt.getTime()) / 1000),
    ...(container.labels[LABEL.gpus] ? { gpus: container.labels[LABEL.gpus].split(',').map(Number) } : {}),
    oomKilled: container.oomKilled || (usage?.memory.oomKills ?? 0) > 0,
    usage,
  }
  return { record, scratchDir: scratch && basename(scratch) === container.name ? scratch : undefined }
}

function usageOf(pid: number): CgroupUsage | undefined {
  try {
    return readUsage(pid)
  } catch {
    return undefined // the container stopped meanwhile: its cgroup is gone
  }
}
