// The container's life around a job: made by the prologue, removed by the epilogue.
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { hostname } from 'node:os'
import { basename, dirname, join } from 'node:path'
import type { Config } from './config.ts'
import { buildContainerSpec, containerName, findJobContainer, LABEL } from './container.ts'
import type { Engine, JobContainer } from './engine.ts'
import { ensureImage, type ImageSource } from './image.ts'
import { lookupUser, type Identity } from './identity.ts'
import { jobVariable, parseDirectives, resolveJobAsks, type JobAsks } from './jobrequest.ts'
import { readUsage, torqueCpuset, type CgroupUsage } from './cgroup.ts'
import type { AccountingRecord } from './accounting.ts'
import { momPrivOf, type EpilogueFacts, type JobFacts } from './torque.ts'
import { CbatchError, UsageError } from './errors.ts'

export const VERSION = '0.1.0'

export type Prepared =
  | { kind: 'native' }
  | { kind: 'container'; id: string; name: string; image: string; imageSource: ImageSource; replaced: boolean }

/** Prologue: the job's container, started and waiting for the job shell. */
export async function prepareJob(facts: JobFacts, config: Config, engine: Engine,
  env: NodeJS.ProcessEnv = process.env): Promise<Prepared> {
  const policy = config.queues.get(facts.queue)
  if (!policy) return { kind: 'native' }
  // What the job asks for is judged before the engine is touched.
  const granted = resolveJobAsks(policy, jobAsks(facts), jobImageVariable(facts))
  // The owner's lookup overlaps the engine's first calls: both are slow, neither needs the
  // other, and neither needs undoing if the owner is then refused. A requeued job may have
  // left its old container behind; it gets a fresh one.
  const [imageSource, replaced, owner] = await Promise.all([
    ensureImage(engine, { image: granted.image, pull: policy.pull }),
    removeJobContainer(engine, facts.jobId),
    lookupUser(facts.user, facts.group),
  ])
  const scratchDir = policy.scratch && join(policy.scratch.base, containerName(facts.jobId))
  const spec = buildContainerSpec({
    job: facts, owner, policy, granted, version: VERSION, hostname: hostname(), exists: existsSync,
    node: {
      ppnHere: env.PBS_NUM_PPN ? Number(env.PBS_NUM_PPN) : undefined,
      torqueCpuset: policy.limits.cpu === 'cpuset' ? torqueCpuset(facts.jobId) : undefined,
    },
    paths: {
      workDir: env.PBS_O_WORKDIR,
      nodeFile: env.PBS_NODEFILE,
      tmpDir: env.TMPDIR,
      momPriv: facts.scriptPath ? momPrivOf(facts.scriptPath) : undefined,
      scratchDir,
    },
  })
  if (scratchDir) makeScratch(scratchDir, owner)
  try {
    const id = await engine.run(spec)
    return { kind: 'container', id, name: spec.name!, image: granted.image, imageSource, replaced }
  } catch (err) {
    if (scratchDir) rmSync(scratchDir, { recursive: true, force: true })
    throw err
  }
}

/** What the job script's `#CBATCH` lines ask for (TORQUE 6 passes the script's path). */
function jobAsks(facts: JobFacts): JobAsks {
  if (!facts.scriptPath) return { mounts: [] }
  try {
    return parseDirectives(readFileSync(facts.scriptPath, 'utf8'))
  } catch (err) {
    if (err instanceof CbatchError) throw err
    throw new UsageError(`cannot read the job script ${facts.scriptPath}`, (err as Error).message)
  }
}

/** CBATCH_IMAGE of qsub -v, from the job as pbs_mom stored it (`<jobid>.JB` beside the script). */
function jobImageVariable(facts: JobFacts): string | undefined {
  const jobFile = facts.scriptPath?.replace(/\.SC$/, '.JB')
  return jobFile && existsSync(jobFile) ? jobVariable(readFileSync(jobFile), 'CBATCH_IMAGE') : undefined
}

function makeScratch(dir: string, owner: Identity): void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o755 })
  rmSync(dir, { recursive: true, force: true }) // a requeued job starts clean
  mkdirSync(dir, { mode: 0o700 })
  chownSync(dir, owner.uid, owner.gid)
}

/** Epilogue: what the job used, read before its container is removed; undefined if it had none. */
export async function cleanupJob(facts: Pick<EpilogueFacts, 'jobId' | 'user' | 'queue' | 'exitStatus'>,
  engine: Engine, now: () => Date = () => new Date()): Promise<AccountingRecord | undefined> {
  const container = await findJobContainer(engine, facts.jobId)
  if (!container) return undefined
  const usage = container.running ? usageOf(container.pid) : undefined
  const [imageDigest] = await Promise.all([
    engine.imageDigest(container.imageId).catch(() => undefined),
    engine.remove(container.id),
  ])
  removeScratch(container)
  const end = now()
  return {
    time: end.toISOString(),
    jobId: facts.jobId,
    user: container.labels[LABEL.user] ?? facts.user,
    queue: container.labels[LABEL.queue] ?? facts.queue,
    node: hostname(),
    container: container.name,
    image: container.image,
    imageDigest,
    exitStatus: facts.exitStatus,
    wallSeconds: Math.max(0, (end.getTime() - container.startedAt.getTime()) / 1000),
    oomKilled: container.oomKilled || (usage?.memory.oomKills ?? 0) > 0,
    usage,
  }
}

/** The job's scratch directory, named by the prologue after the container. */
function removeScratch(container: JobContainer): void {
  const dir = container.labels[LABEL.scratch]
  if (dir && basename(dir) === container.name) rmSync(dir, { recursive: true, force: true })
}

function usageOf(pid: number): CgroupUsage | undefined {
  try {
    return readUsage(pid)
  } catch {
    return undefined // the container stopped meanwhile: its cgroup is gone
  }
}

/** A requeued job's container from its earlier run; true if there was one. */
async function removeJobContainer(engine: Engine, jobId: string): Promise<boolean> {
  const stale = await findJobContainer(engine, jobId)
  if (stale) await engine.remove(stale.id)
  return stale !== undefined
}
