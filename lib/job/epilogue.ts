// The epilogue's work: what the job used, read before its container is removed.
import { hostname } from 'node:os'
import { join } from 'node:path'
import { findJobContainer } from './container.ts'
import { LABEL, labelOf } from '../engine/labels.ts'
import type { Engine } from '../engine/engine.ts'
import { readUsage, type CgroupUsage } from '../host/cgroup.ts'
import { killContainerInit } from '../host/proc.ts'
import type { EpilogueFacts } from '../torque/contract.ts'
import type { AccountingRecord } from './accounting.ts'

/**
 * Epilogue: what the job used, read before its container is removed, and its scratch
 * directory, to remove once that is recorded; undefined if the job had no container.
 * `scratchBase` is the job's queue's, from the config: the container's label only says
 * whether the prologue made the directory, and is believed only if it names exactly the
 * one the prologue would have made there for this job (defence in depth: create sets
 * every label, so an image's cannot show through).
 * `removeLater`: takes the container's removal over once its processes are killed from the
 * host (a detached remover, hooks/remover.ts); without it, or when they cannot be, the
 * engine removes it here.
 */
export async function cleanupJob(facts: Pick<EpilogueFacts, 'jobId' | 'user' | 'queue'> & { momPriv: string; exitStatus?: number; onlyContainer?: string; scratchBase?: string; removeLater?: (id: string) => void },
  engine: Engine, now: () => Date = () => new Date()): Promise<{ record: AccountingRecord; scratchDir?: string } | undefined> {
  // This mom's container of the job: another mom on the engine may run a try of the same job.
  const container = await findJobContainer(engine, facts.jobId, facts.momPriv)
  // A sister's guard (hooks/prologue.ts) removes the container it guards, never a later try's.
  if (!container || (facts.onlyContainer !== undefined && container.id !== facts.onlyContainer)) return undefined
  const usage = container.running ? usageOf(container.pid) : undefined
  // The engine's stop unmounts the container's overlay, which syncs the node's whole
  // filesystem: seconds with a job's output still to write back (bench/RESULTS.md). Killed
  // from the host, no process of the job outlives the epilogue, and that waits for no one.
  const { removeLater } = facts
  const handOver = removeLater !== undefined && (!container.running || await killContainerInit(container.pid, engine.cgroupNames(container.id)))
  const [imageDigest] = await Promise.all([
    engine.imageDigest(container.imageId, container.image).catch(() => undefined),
    handOver ? undefined : engine.remove(container.id),
  ])
  if (handOver) removeLater(container.id)
  const end = now()
  const { labels } = container
  const expected = facts.scratchBase === undefined ? undefined : join(facts.scratchBase, container.name)
  const scratchDir = expected !== undefined && labelOf(labels, LABEL.scratch) === expected ? expected : undefined
  const gpus = labelOf(labels, LABEL.gpus)
  const signer = labelOf(labels, LABEL.signer)
  const record: AccountingRecord = {
    time: end.toISOString(),
    jobId: facts.jobId,
    user: labelOf(labels, LABEL.user) ?? facts.user,
    queue: labelOf(labels, LABEL.queue) ?? facts.queue,
    node: hostname(),
    nodeNumber: Number(labelOf(labels, LABEL.node) ?? 0),
    container: container.name,
    image: container.image,
    imageDigest,
    runtime: container.runtime,
    exitStatus: facts.exitStatus,
    wallSeconds: Math.max(0, (end.getTime() - container.startedAt.getTime()) / 1000),
    ...(gpus ? { gpus: gpus.split(',').map(Number) } : {}),
    ...(signer ? { signer } : {}),
    oomKilled: container.oomKilled || (usage?.memory.oomKills ?? 0) > 0,
    usage,
  }
  return { record, scratchDir }
}

function usageOf(pid: number): CgroupUsage | undefined {
  try {
    return readUsage(pid)
  } catch {
    return undefined // the container stopped meanwhile: its cgroup is gone
  }
}
