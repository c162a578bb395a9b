// The prologue's work: the job's container, made and started for it and checked, or the
// job refused before anything is made.
import { closeSync, constants, existsSync, fstatSync, openSync, readSync } from 'node:fs'
import { availableParallelism, hostname, totalmem } from 'node:os'
import type { Config, QueuePolicy } from '../policy/config.ts'
import { jobGpus } from '../host/gpus.ts'
import { verifiedImage } from './signatures.ts'
import { claimPull, ensureImage, pullPlan, pullRecord, pullWithRetries, waitForImage, type ImageSource } from './pull.ts'
import { recordImageUse } from '../node/imagecache.ts'
import { buildContainerSpec, containerName, findJobContainer, type JobOutput } from './container.ts'
import type { ContainerEngine, ContainerSpec, Engine } from '../engine/engine.ts'
import { grantedImage } from '../policy/image.ts'
import { lookupUser } from '../host/identity.ts'
import { parseDirectives, type JobAsks } from '../policy/jobrequest.ts'
import { assertUnchanged, identityWithoutLinks, planMounts, proveBinds, type ExpectedBind, type HostMount } from '../host/mounts.ts'
import { outputFiles } from './output.ts'
import { accountLines, accountsDir, removeAccountFiles, writeAccountFiles, type AccountFiles } from '../host/accounts.ts'
import { checkOwner, neverMounted } from '../policy/security.ts'
import { isWithin } from '../host/paths.ts'
import { makeScratch, removeScratchDir } from '../host/scratch.ts'
import { grantableLimits } from '../host/grantable.ts'
import { containerFiles } from '../host/files.ts'
import { VERSION } from '../version.ts'
import type { JobContext } from '../torque/job.ts'
import type { BatchNode } from '../torque/mom.ts'
import { CbatchError, ImagePullError, JobImagePullError, PolicyError, PullUnderWayError, UnsafePathError, JobFileError, RuntimeMissingError, EngineTimeoutError } from '../errors.ts'

export type Prepared =
  | { kind: 'native' }
  | { kind: 'container'; id: string; name: string; image: string; imageSource: ImageSource; replaced: boolean; signer?: string }

/** Where the prologue runs, beyond the job (torque/job.ts). */
export interface PrologueContext {
  /** The pbs_mom running the prologue. */
  batch: BatchNode
  /**
   * A sister node's prologue.parallel. It runs before the mother superior's prologue, with
   * no job script, job file or node file yet (docs/torque-contract.md): its container is made
   * from what every node of the job knows alike (below, `prepareJob`).
   */
  sister?: boolean
  /**
   * Starts a pull of the image detached from the prologue (hooks/puller.ts), so that it
   * may outlive it; without it, the prologue pulls the image itself.
   */
  startPuller?: (image: string) => void
  /** The node the prologue works on: this one (NODE_HOST) unless a test gives another. */
  host?: PrologueHost
  /** Filled in as the prologue goes, for `countsAgainstNode` if it fails. */
  attempt?: Attempt
}

/**
 * What the prologue asks of the node itself, beside the engine and the files it makes in
 * the mom's state directory: the owner (NSS), the owner's paths, the node's facts, the
 * proof of the started container's binds. A test gives its own to run the prologue's
 * orchestration on no real node.
 */
export interface PrologueHost {
  lookupUser: typeof lookupUser
  accountLines: typeof accountLines
  planMounts: typeof planMounts
  makeScratch: typeof makeScratch
  /** The node's name, memory and CPUs, and the rlimits the engine on `socket` can grant. */
  facts(socket: string): { hostname: string; memoryBytes: number; cpus: number; rlimitCeilings: ReturnType<typeof grantableLimits> }
  /** Notes that a job used the image (cbatch images prune keeps what jobs use). */
  recordImageUse: (image: string) => void
  /** Proves that the container whose init is `pid` shows each bind as judged; throws if not. */
  proveBinds(pid: number, binds: ExpectedBind[]): void
}

export const NODE_HOST: PrologueHost = {
  lookupUser, accountLines, planMounts, makeScratch,
  facts: socket => ({ hostname: hostname(), memoryBytes: totalmem(), cpus: availableParallelism(), rlimitCeilings: grantableLimits(socket) }),
  recordImageUse: image => recordImageUse(image),
  proveBinds: (pid, binds) => {
    const files = containerFiles(pid)
    proveBinds(files.pid, binds, undefined, { readOnlyShown: files.readOnlyShown })
  },
}

/** What the prologue had come to when it failed: what its failure may owe to the job's own choices. */
export interface Attempt {
  /** The job runs in an image it chose (`#CBATCH image=`), not in its queue's. */
  chosenImage?: boolean
  /** The engine was making and starting the container, whose spec binds paths the owner can change. */
  runWithOwnerPaths?: boolean
}

/**
 * Whether the prologue's failure counts against the node: the streak of requeues
 * (node/requeues.ts), which the node check turns into an ERROR that takes the node out of
 * scheduling for every user. Only what says the node cannot run jobs may count, never what a
 * job could have brought about itself, or one owner could take nodes down at will:
 * - a refusal (abort) is not requeued at all;
 * - a pull still under way is a big image on its way (the requeued job finds it);
 * - anything that failed for a job in an image it chose: its registry, its image's content
 *   and config are the job's choice (JobImagePullError is that for pulls);
 * - anything that failed while the engine made the container with paths the owner can
 *   change bound into it (home, work directory, TMPDIR, `#CBATCH mount=`, the job's output
 *   files): the owner can swap such a path while the engine mounts it and swap it back
 *   before `assertUnchanged` looks, so the engine fails and nothing shows the owner did it.
 *   A node whose engine fails every such run is then not caught by the streak; the node
 *   check's own ping, and the node log's requeues, still show an engine that is down.
 * Everything else (engine unreachable or too slow elsewhere, the queue's own image not
 * pulled, internal errors) counts.
 */
export function countsAgainstNode(err: unknown, attempt: Attempt = {}): boolean {
  if (err instanceof CbatchError && err.disposition !== 'requeue') return false
  if (err instanceof PullUnderWayError || err instanceof JobImagePullError) return false
  if (attempt.chosenImage || attempt.runWithOwnerPaths) return false
  return true
}

/**
 * How the prologue gets an image onto the node: the first prologue to need it starts a
 * detached pull and every one waits for it within the pull deadline (job/pull.ts);
 * without a puller, the pull is the prologue's own.
 */
function pullFor(config: Config, policy: QueuePolicy, engine: Engine, { startPuller }: PrologueContext): (image: string) => Promise<void> {
  const timeoutMs = config.engine.pullTimeout * 1000
  if (!startPuller) {
    return image => pullWithRetries(engine, image, pullPlan(config.images, image, timeoutMs))
  }
  const fresh = policy.pull === 'always'
  return async image => {
    if (claimPull(image)) {
      // A pull that ended since this prologue looked may have brought it: no second pull.
      if (!fresh && await engine.hasImage(image)) return pullRecord.ended(image, undefined)
      startPuller(image)
    }
    await waitForImage(engine, image, timeoutMs, { fresh })
  }
}

/** Prologue: the job's container, started and waiting for the job shell. */
export async function prepareJob(job: JobContext, config: Config, engine: Engine, context: PrologueContext): Promise<Prepared> {
  const policy = config.queues.get(job.queue)
  if (!policy) return { kind: 'native' }
  const { batch, sister, host = NODE_HOST } = context
  // What the job asks for is judged before the engine is touched.
  const asks = sister ? { mounts: [] } : jobAsks(job, batch.scriptDir, policy.maxMounts)
  const image = grantedImage(policy, asks)
  if (context.attempt) context.attempt.chosenImage = image !== policy.image
  // How many nodes the job has, and its share of this one: what each node may give it depends on it.
  const { share } = job
  sameOnEveryNode(share.nodes, policy.image, image, asks)
  await checkRuntime(engine, job.queue, policy.runtime)
  // The owner's lookup overlaps the engine's first calls: both are slow, neither needs the
  // other, and neither needs undoing if the owner is then refused. A requeued job may have
  // left its old container behind; it gets a fresh one.
  const [imageSource, replaced, owner] = await Promise.all([
    ensureImage(engine, { image, pull: policy.pull }, pullFor(config, policy, engine, context)).catch(err => {
      // A registry the job chose cannot take the node out of scheduling (node/requeues.ts).
      throw image !== policy.image && err instanceof ImagePullError ? new JobImagePullError(err.userMessage, undefined, { cause: err }) : err
    }),
    removeJobContainer(engine, job.jobId, batch.stateDir, config.engine.timeout * 1000),
    host.lookupUser(job.user, job.group),
  ])
  host.recordImageUse(image)
  // Signed images only: the container is made from the digest verified, never from a tag.
  const signed = policy.signatures.required ? await verifiedImage(engine, image, {
    keys: policy.signatures.keys, auth: config.images.auth, timeoutMs: config.engine.timeout * 1000,
  }) : undefined
  checkOwner(owner, policy.allowRoot) // before any of the owner's paths is looked at
  // NSS again, for the container's account files: overlapping the owner's paths.
  const lines = host.accountLines(owner)
  lines.catch(() => undefined) // awaited below; not an unhandled rejection if the job is refused first
  const mounts = await host.planMounts({
    owner, policy, requested: asks.mounts, workDir: job.workDir, tmpDir: job.tmpDir, neverMounted: neverMounted(batch.home, config.engine.socket),
  })
  const gpus = await jobGpusHere(job, policy, engine)
  const name = containerName(job.jobId, batch.stateDir)
  // Interactive jobs have no script (pbs_mom names one all the same) and keep their terminal;
  // others write their own output.
  const script = job.scriptPath && existsSync(job.scriptPath) ? job.scriptPath : undefined
  const output = script ? outputFiles(owner.uid) : undefined
  const node = host.facts(config.engine.socket)
  const build = (scratchDir?: string, accounts?: AccountFiles) => buildContainerSpec({
    job, owner, policy, image, signed, mounts, gpus, version: VERSION, hostname: node.hostname,
    node: {
      number: share.number,
      ppnHere: share.ppnHere,
      npTotal: share.npTotal,
      provisional: share.provisional,
      hostMemory: node.memoryBytes,
      hostCpus: node.cpus,
      torqueCpuset: job.cpuset,
      rlimitCeilings: node.rlimitCeilings,
    },
    paths: {
      nodeFile: job.nodeFile,
      script, output, batch, scratchDir, accounts,
    },
  })
  build() // every policy check passes before anything is made on the node
  const scratchDir = policy.scratch && await host.makeScratch(policy.scratch.base, name, owner)
  const accounts = accountsDir(batch.stateDir, name)
  try {
    // An engine that could not mount a path the owner swapped meanwhile is the owner's doing: refused, not requeued.
    const spec = build(scratchDir, writeAccountFiles(accounts, await lines, owner))
    const binds = expectedBinds(spec, mounts, output)
    // Only the site's volumes are the admin's (resolved as root); every other bind, and the output files, the owner's.
    if (context.attempt) context.attempt.runWithOwnerPaths = output !== undefined || mounts.some(m => m.what !== 'volume')
    const id = await engine.run(spec).catch(err => {
      assertUnchanged(mounts)
      throw err
    })
    if (context.attempt) context.attempt.runWithOwnerPaths = false
    const started = await engine.inspect(id)
    try {
      host.proveBinds(started?.pid ?? 0, binds)
    } catch (err) {
      await engine.remove(id)
      throw err
    }
    return { kind: 'container', id, name, image: signed?.reference ?? image, imageSource, replaced, signer: signed?.signer }
  } catch (err) {
    if (scratchDir) await removeScratchDir(scratchDir).catch(() => undefined)
    removeAccountFiles(accounts)
    throw err
  }
}

/** A queue's runtime must be one the engine has: its jobs are refused before anything is pulled or made. */
async function checkRuntime(engine: ContainerEngine, queue: string, runtime: string | undefined): Promise<void> {
  if (runtime === undefined) return
  const known = await engine.runtimes()
  if (!known.includes(runtime)) {
    throw new RuntimeMissingError(`queue ${queue} runs its jobs under the container runtime ${runtime}, which this node's engine does not have (it has ${known.join(', ')}); tell the node's admin`)
  }
}

/**
 * The nodes of a job make their containers without talking to each other, each from what it
 * knows: the queue, the owner, the job's size and work directory. Sisters never see the job
 * script (`#CBATCH` lines) when they make theirs, so a
 * job on several nodes runs in its queue's image with the site's mounts only.
 */
function sameOnEveryNode(nodes: number, queueImage: string, image: string, asks: JobAsks): void {
  if (nodes > 1 && (image !== queueImage || asks.mounts.length)) {
    throw new PolicyError(`this job runs on ${nodes} nodes, where every node makes the same container: `
      + `it runs in its queue's image ${queueImage} with the site's mounts (#CBATCH image= and mount= are for one-node jobs)`)
  }
}

/**
 * The GPUs the job asked for (`nodes=1:gpus=N`) and pbs_mom gave it on this node, if its
 * queue gives GPUs at all. Sisters learn theirs only after prologue.parallel (they have no
 * gpu file before), so a GPU job runs on one node.
 */
async function jobGpusHere(job: JobContext, policy: QueuePolicy, engine: ContainerEngine) {
  const asked = job.request.nodes.reduce((sum, n) => sum + n.gpus * n.count, 0)
  const { nodes } = job.share
  if (!asked) return undefined
  if (!policy.gpus) throw new PolicyError(`the job asks for ${asked} GPU${asked > 1 ? 's' : ''}; queue ${job.queue} gives none`)
  if (nodes > 1) throw new PolicyError(`the job asks for GPUs on ${nodes} nodes; cbatch gives GPUs to jobs on one node`)
  const gpus = jobGpus(asked, job.gpus, policy.gpus.devices)
  const runtime = policy.gpus.runtime === 'nvidia' || (policy.gpus.runtime === 'auto' && (await engine.runtimes()).includes('nvidia'))
  return { ...gpus, runtime }
}

/** Longest leading part of a job script read for `#CBATCH` lines: they sit in its first comment block. */
export const SCRIPT_HEAD_BYTES = 64 * 1024

/**
 * What the job script's `#CBATCH` lines ask for (TORQUE 6 passes the script's path). The
 * script is the owner's file in root's jobs directory: read without following a link, and
 * only its head. Interactive jobs have none, though pbs_mom names one.
 */
function jobAsks(facts: JobContext, scriptDir: string, maxMounts: number): JobAsks {
  if (!facts.scriptPath) return { mounts: [] }
  if (!isWithin(facts.scriptPath, scriptDir)) throw new JobFileError(`job script ${facts.scriptPath} is not in ${scriptDir}`)
  let head: string
  try {
    head = readHead(facts.scriptPath, SCRIPT_HEAD_BYTES)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { mounts: [] }
    throw new JobFileError(`cannot read the job script ${facts.scriptPath}`, (err as Error).message)
  }
  const asks = parseDirectives(head, maxMounts)
  if (head.length >= SCRIPT_HEAD_BYTES && !/\n[ \t]*[^#\s]/.test(head)) {
    throw new PolicyError(`the job script's leading comment block is longer than ${SCRIPT_HEAD_BYTES / 1024} KiB: #CBATCH lines must come earlier`)
  }
  return asks
}

function readHead(file: string, bytes: number): string {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  try {
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file')
    const buffer = Buffer.alloc(bytes)
    return buffer.subarray(0, readSync(fd, buffer, 0, bytes, 0)).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

/** A requeued job's container from its earlier run; true if there was one. */
async function removeJobContainer(engine: ContainerEngine, jobId: string, stateDir: string, timeoutMs: number): Promise<boolean> {
  const stale = await findJobContainer(engine, jobId, stateDir, { former: false })
  if (!stale) return false
  await engine.remove(stale.id)
  // The earlier try's remover (hooks/remover.ts) may be at it still, and the engine then
  // answers at once: the name is free for this try only once the container is gone.
  for (const until = Date.now() + timeoutMs; await engine.inspect(stale.id); await new Promise(r => setTimeout(r, 50))) {
    if (Date.now() > until) throw new EngineTimeoutError(`the earlier run's container ${stale.name} of the job was not removed in time`)
  }
  return true
}

/**
 * What each bind of the container must show, as judged: the job's directories by what the
 * owner's resolution found, its output by the files pbs_mom opened, and root's own files
 * (accounts, node file, script, scratch) as they are now, in places only root can change.
 */
function expectedBinds(spec: ContainerSpec, mounts: HostMount[], output: JobOutput | undefined): ExpectedBind[] {
  const outputs = [output?.stdout, output?.stderr].filter(f => f !== undefined)
  return spec.mounts.map(({ source, target, readOnly }) => {
    const judged = mounts.find(m => m.source === source && m.target === target)
    if (judged) return { target, readOnly, identity: judged.identity, what: `${judged.what} ${source}` }
    const file = outputs.find(f => f.path === source)
    if (file) return { target, readOnly, identity: file, what: `the job's output file ${source}` }
    const identity = identityWithoutLinks(source)
    if (!identity) throw new UnsafePathError(`${source} changed while the job's container was made; the job is refused`)
    return { target, readOnly, identity, what: source }
  })
}

