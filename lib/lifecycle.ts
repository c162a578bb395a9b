// The container's life around a job: made by the prologue, removed by the epilogue.
import { existsSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import type { Config } from './config.ts'
import { buildContainerSpec, LABEL } from './container.ts'
import type { Engine } from './engine.ts'
import { ensureImage, type ImageSource } from './image.ts'
import { lookupUser } from './identity.ts'
import type { EpilogueFacts, JobFacts } from './torque.ts'

export const VERSION = '0.1.0'

export type Prepared =
  | { kind: 'native' }
  | { kind: 'container'; id: string; name: string; image: string; imageSource: ImageSource; replaced: number }

/** Prologue: the job's container, started and waiting for the job shell. */
export async function prepareJob(facts: JobFacts, config: Config, engine: Engine,
  env: NodeJS.ProcessEnv = process.env): Promise<Prepared> {
  const policy = config.queues.get(facts.queue)
  if (!policy) return { kind: 'native' }
  const owner = await lookupUser(facts.user, facts.group)
  // Every policy decision is made before the engine is touched.
  const spec = buildContainerSpec({
    job: facts, owner, policy, version: VERSION, hostname: hostname(), exists: existsSync,
    paths: {
      workDir: env.PBS_O_WORKDIR,
      nodeFile: env.PBS_NODEFILE,
      tmpDir: env.TMPDIR,
      momPriv: facts.scriptPath ? dirname(dirname(facts.scriptPath)) : undefined,
    },
  })
  // A requeued job may have left its old container behind; it gets a fresh one.
  const [imageSource, replaced] = await Promise.all([ensureImage(engine, policy), removeJobContainers(engine, facts.jobId)])
  const id = await engine.run(spec)
  return { kind: 'container', id, name: spec.name!, image: policy.image, imageSource, replaced }
}

export interface Cleaned {
  /** Containers found and removed for the job. */
  removed: { name: string; image: string; state: string; exitCode: number; oomKilled: boolean }[]
}

/** Epilogue: the job's containers, whatever their state, are gone. */
export async function cleanupJob(facts: Pick<EpilogueFacts, 'jobId'>, engine: Engine): Promise<Cleaned> {
  const containers = await engine.findByLabel(LABEL.job, facts.jobId)
  const removed = await Promise.all(containers.map(async c => {
    const details = await engine.inspect(c.id)
    await engine.remove(c.id)
    return { name: c.name, image: details.image, state: details.state, exitCode: details.exitCode, oomKilled: details.oomKilled }
  }))
  return { removed }
}

async function removeJobContainers(engine: Engine, jobId: string): Promise<number> {
  const stale = await engine.findByLabel(LABEL.job, jobId)
  await Promise.all(stale.map(c => engine.remove(c.id)))
  return stale.length
}
