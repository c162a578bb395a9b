// The job's container: its name, how it is found, and its spec, a pure function of the
// job, its owner and its queue's policy, in cbatch's terms (the engine adapter translates
// it). Everything a job's container may do is decided here and in policy/security.ts.
import { createHash } from 'node:crypto'
import { realpathSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { QueuePolicy } from '../policy/config.ts'
import type { BindMount, ContainerDetails, ContainerEngine, ContainerSpec } from '../engine/engine.ts'
import { LABEL, labelOf, type LabelKey } from '../engine/labels.ts'
import { PolicyError } from '../errors.ts'
import type { Identity } from '../host/identity.ts'
import type { BatchNode } from '../torque/mom.ts'
import type { JobContext } from '../torque/job.ts'
import { containerLimits, containerRlimits, countRlimits, type NodeFacts } from '../policy/resources.ts'
import type { HostMount } from '../host/mounts.ts'
import type { JobGpus } from '../host/gpus.ts'
import { checkOwner, HOLDER_UID } from '../policy/security.ts'
import { isWithin } from '../host/paths.ts'

/** Where the job's output files are inside its container (job/output.ts). */
export const OUTPUT_TARGETS = { stdout: '/.cbatch/stdout', stderr: '/.cbatch/stderr' } as const

export interface OutputFile {
  /** The host path pbs_mom opened, as /proc names it. */
  path: string
  dev: number
  ino: number
}

export interface JobOutput {
  stdout: OutputFile
  /** Absent when stderr is the same file (qsub -j oe). */
  stderr?: OutputFile
}

export interface JobPaths {
  /** The container's /etc/passwd and /etc/group (host/accounts.ts); else the node's. */
  accounts?: { passwd: string; group: string }
  /** The job's .OU/.ER as the prologue holds them open, mounted for the job to write itself. */
  output?: JobOutput
  /** PBS_NODEFILE, when it exists. */
  nodeFile?: string
  /** The job script, when it exists (interactive jobs have none). */
  script?: string
  /** The pbs_mom making it: it labels the container, and a job script is mounted only from its script directory. */
  batch: Pick<BatchNode, 'stateDir' | 'scriptDir'>
  /** The job's scratch directory on the host, when the queue gives one. */
  scratchDir?: string
}

const HOLDER_USER = `${HOLDER_UID}:${HOLDER_UID}`

export interface ContainerRequest {
  job: Pick<JobContext, 'jobId' | 'queue' | 'request'>
  owner: Identity
  policy: QueuePolicy
  paths: JobPaths
  version: string
  hostname: string
  /** The image, as its queue allowed it. */
  image: string
  /** The image's digest as its signature was verified (job/signatures.ts): the container is made from it. */
  signed?: { reference: string; signer: string }
  /** Host directories of the site and of the job, resolved and judged (host/mounts.ts). */
  mounts: HostMount[]
  /** What pbs_mom and TORQUE's cgroups tell about the job on this node. */
  node: NodeFacts
  /** The job's GPUs on this node (host/gpus.ts); `runtime`: by the engine's NVIDIA runtime. */
  gpus?: JobGpus & { runtime: boolean }
}

/**
 * The job's container name on its engine: the job id sanitised, a hash of the raw id (ids
 * sanitised alike stay distinct), and a short digest of the mom_priv of the pbs_mom whose
 * prologue makes it. Several moms may share one engine (multi-mom hosts, a sister try of
 * the same job on another mom of the host): each names its own container, and never finds
 * another's. `cbatch-<job>-<id hash>-<mom digest>`.
 */
export function containerName(jobId: string, momPriv: string): string {
  return `${formerContainerName(jobId)}-${momDigest(momPriv)}`
}

/** The name before it told moms apart: a job's container made by an earlier cbatch still has it. */
function formerContainerName(jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)
  return `cbatch-${safe}-${digest(jobId, 10)}`
}

const digest = (text: string, chars: number) => createHash('sha256').update(text).digest('hex').slice(0, chars)

/** mom_priv as the kernel resolves it (links, `//`): however a hook's path reaches it, one digest. */
function momDigest(momPriv: string): string {
  return digest(realMomPriv(momPriv), 6)
}

function realMomPriv(momPriv: string): string {
  try {
    return realpathSync(momPriv)
  } catch {
    return resolve(momPriv)
  }
}

/**
 * Whether a container's `cbatch.mom` label names this mom's mom_priv: the same directory,
 * however either path reaches it. Unlabelled: no mom's (made before the label).
 */
export function isThisMom(labels: Record<string, string> | undefined, momPriv: string): boolean {
  const label = labelOf(labels, LABEL.mom)
  return label !== undefined && (label === momPriv || realMomPriv(label) === realMomPriv(momPriv))
}

/**
 * The job's container made by this mom's prologue (`momPriv`), by the name that prologue
 * gave it (one engine call, and names are unique); undefined if there is none, or if what
 * has the name is not labelled this job's and this mom's. `former`: also by the name an
 * earlier cbatch gave it (a job that ran across an upgrade), if labelled this mom's; the
 * prologue, which looks only for a requeued job's stale container, spares that call.
 */
export async function findJobContainer(engine: ContainerEngine, jobId: string, momPriv: string,
  { former = true }: { former?: boolean } = {}): Promise<ContainerDetails | undefined> {
  const ours = (found: ContainerDetails | undefined) => (labelOf(found?.labels, LABEL.job) === jobId && isThisMom(found?.labels, momPriv) ? found : undefined)
  const found = ours(await engine.inspect(containerName(jobId, momPriv)))
  return found ?? (former ? ours(await engine.inspect(formerContainerName(jobId))) : undefined)
}

export function buildContainerSpec(req: ContainerRequest): ContainerSpec {
  const { job, owner, policy, paths } = req
  const { request } = job
  checkOwner(owner, policy.allowRoot)
  const limits = containerLimits(request, policy.limits, req.node)
  return {
    name: containerName(job.jobId, paths.batch.stateDir),
    image: req.signed?.reference ?? req.image,
    // The holder alone, unless the queue runs the image's entrypoint around it.
    entrypoint: policy.entrypoint,
    command: policy.holder,
    // The exec'd job shell inherits this.
    env: policy.scratch && paths.scratchDir ? [`CBATCH_SCRATCH=${policy.scratch.target}`] : [],
    user: HOLDER_USER,
    groups: owner.groups.filter(g => g !== owner.gid).map(String),
    // Every label of LABEL, always: those that do not apply are empty, not left out, or
    // the image's own `cbatch.*` labels would show through (the engine merges create's
    // labels over the image's). An image carrying such labels is not refused: one
    // committed from a job's container carries them innocently, and once overridden they
    // are inert. The type makes a label added to LABEL but not set here a compile error.
    labels: {
      [LABEL.job]: job.jobId,
      [LABEL.user]: owner.name,
      [LABEL.uid]: String(owner.uid),
      [LABEL.gid]: String(owner.gid),
      [LABEL.queue]: job.queue,
      [LABEL.version]: req.version,
      [LABEL.shellFallback]: policy.shellFallback,
      [LABEL.scratch]: policy.scratch && paths.scratchDir ? paths.scratchDir : '',
      [LABEL.cput]: request.cput !== undefined ? String(request.cput) : '',
      [LABEL.node]: String(req.node.number ?? 0),
      [LABEL.gpus]: req.gpus ? req.gpus.indices.join(',') : '',
      [LABEL.mom]: paths.batch.stateDir,
      [LABEL.provisional]: req.node.provisional ? 'true' : '',
      [LABEL.image]: req.image,
      [LABEL.signer]: req.signed?.signer ?? '',
    } satisfies Record<LabelKey, string>,
    // With the host's network the host's name comes along; Docker refuses to set both.
    hostname: policy.network === 'none' ? req.hostname : undefined,
    network: policy.network,
    runtime: policy.runtime,
    mounts: mounts(req),
    capAdd: policy.capAdd,
    devices: [
      ...policy.devices.map(d => ({ host: d.path, container: d.path, permissions: d.permissions ?? 'rwm' })),
      ...(req.gpus && !req.gpus.runtime ? req.gpus.devices.map(d => ({ host: d, container: `/dev/${basename(d)}`, permissions: 'rw' })) : []),
    ],
    gpus: req.gpus?.runtime ? { driver: 'nvidia', ids: req.gpus.indices.map(String) } : undefined,
    readOnlyRootfs: policy.readOnlyRootfs,
    tmpSize: policy.readOnlyRootfs ? policy.tmpSize : undefined,
    pidsLimit: policy.pidsLimit,
    cgroupParent: policy.cgroupParent === 'torque' ? `/torque/${job.jobId}` : undefined,
    limits,
    // RLIMIT_MEMLOCK: RDMA (InfiniBand) registers memory it pins.
    rlimits: { ...containerRlimits(request), ...countRlimits(policy, req.node.rlimitCeilings), ...(policy.memlock ? { memlock: { soft: policy.memlock, hard: policy.memlock } } : {}) },
    // MPI's shared-memory transports live in /dev/shm: as large as the job's memory (it
    // counts against it), not the engine's 64 MB.
    shmSize: policy.shmSize ?? limits.memoryBytes ?? Math.floor((req.node.hostMemory ?? 2 * 64 * 1024 ** 2) / 2),
  }
}

function mounts(req: ContainerRequest): BindMount[] {
  const { policy, paths } = req
  const bind = (source: string, target: string, readOnly: boolean): BindMount => ({ source, target, readOnly })
  // pbs_mom's own files of this job, below PBS_HOME: mounted one by one, read-only.
  const list = [bind(paths.accounts?.passwd ?? '/etc/passwd', '/etc/passwd', true), bind(paths.accounts?.group ?? '/etc/group', '/etc/group', true)]
  if (paths.nodeFile) list.push(bind(paths.nodeFile, paths.nodeFile, true))
  if (paths.script) {
    if (!isWithin(paths.script, paths.batch.scriptDir)) throw new PolicyError(`job script ${paths.script} is not in ${paths.batch.scriptDir}`)
    list.push(bind(paths.script, paths.script, true))
  }
  list.push(...req.mounts.map(m => bind(m.source, m.target, m.readOnly)))
  if (policy.scratch && paths.scratchDir) list.push(bind(paths.scratchDir, policy.scratch.target, false))
  if (paths.output) {
    list.push(bind(paths.output.stdout.path, OUTPUT_TARGETS.stdout, false))
    if (paths.output.stderr) list.push(bind(paths.output.stderr.path, OUTPUT_TARGETS.stderr, false))
  }
  return list
}
