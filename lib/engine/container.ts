// The job's container: its name and labels, how it is found, and its create request, a
// pure function of the job, its owner and its queue's policy. Everything a container may
// do is decided here, in one place.
import { createHash } from 'node:crypto'
import { realpathSync } from 'node:fs'
import { basename, normalize } from 'node:path'
import type { QueuePolicy } from '../policy/config.ts'
import type { ContainerCreateSpec, ContainerDetails, ContainerEngine } from './engine.ts'
import { PolicyError } from '../errors.ts'
import type { Identity } from '../host/identity.ts'
import type { JobFacts } from '../torque/contract.ts'
import { containerLimits, containerUlimits, parseRequest, type NodeFacts } from '../policy/resources.ts'
import type { HostMount } from '../host/mounts.ts'
import type { JobGpus } from '../host/gpus.ts'
import { checkOwner, CONFINEMENT, HOLDER_UID, isWithin } from '../policy/security.ts'

export const LABEL = {
  job: 'cbatch.job',
  user: 'cbatch.user',
  uid: 'cbatch.uid',
  gid: 'cbatch.gid',
  queue: 'cbatch.queue',
  version: 'cbatch.version',
  shellFallback: 'cbatch.shell-fallback',
  scratch: 'cbatch.scratch',
  /** The job's `cput` limit, seconds: the starter enforces it as pbs_mom would. */
  cput: 'cbatch.cput',
  /** PBS_NODENUM: 0 on the mother superior, 1, 2, ... on sister nodes. */
  node: 'cbatch.node',
  /** The node's indices of the job's GPUs, comma-separated. */
  gpus: 'cbatch.gpus',
  /** mom_priv of the pbs_mom whose prologue made it: gc and ps of one mom leave another's alone. */
  mom: 'cbatch.mom',
  /** A sister's container sized before its share was known: its job's starters size it (job/share.ts resizeSister). */
  provisional: 'cbatch.provisional',
} as const

export type LabelKey = typeof LABEL[keyof typeof LABEL]

/**
 * A cbatch label of a container, undefined when absent or empty. A container inherits its
 * image's labels, and a job owner may choose an image they built: create sets every label
 * of LABEL, empty where it does not apply (an explicit value, empty too, wins over the
 * image's), so that no `cbatch.*` value root reads ever comes from an image. Readers go
 * through here, so empty means "not set" everywhere.
 */
export function labelOf(labels: Record<string, string> | undefined, key: LabelKey): string | undefined {
  const value = labels?.[key]
  return value === undefined || value === '' ? undefined : value
}

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
  /** mom_priv of this pbs_mom: only the job's own script in it may be mounted. */
  momPriv: string
  /** The job's scratch directory on the host, when the queue gives one. */
  scratchDir?: string
}

const HOLDER_USER = `${HOLDER_UID}:${HOLDER_UID}`

export interface ContainerRequest {
  job: JobFacts
  owner: Identity
  policy: QueuePolicy
  paths: JobPaths
  version: string
  hostname: string
  /** The image, as its queue allowed it. */
  image: string
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
    return normalize(momPriv)
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

export function buildContainerSpec(req: ContainerRequest): ContainerCreateSpec {
  const { job, owner, policy, paths } = req
  const request = parseRequest(job.resources)
  checkOwner(owner, policy.allowRoot)
  const limits = containerLimits(request, policy.limits, req.node)
  return {
    name: containerName(job.jobId, paths.momPriv),
    Image: req.image,
    // The holder alone, unless the queue runs the image's entrypoint around it.
    Entrypoint: policy.entrypoint ? undefined : [],
    Cmd: policy.holder,
    // The exec'd job shell inherits this.
    Env: policy.scratch && paths.scratchDir ? [`CBATCH_SCRATCH=${policy.scratch.target}`] : [],
    User: HOLDER_USER,
    // Every label of LABEL, always: those that do not apply are empty, not left out, or
    // the image's own `cbatch.*` labels would show through (the engine merges create's
    // labels over the image's). An image carrying such labels is not refused: one
    // committed from a job's container carries them innocently, and once overridden they
    // are inert. The type makes a label added to LABEL but not set here a compile error.
    Labels: {
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
      [LABEL.mom]: paths.momPriv,
      [LABEL.provisional]: req.node.provisional ? 'true' : '',
    } satisfies Record<LabelKey, string>,
    // With the host's network the host's name comes along; Docker refuses to set both.
    Hostname: policy.network === 'none' ? req.hostname : undefined,
    NetworkDisabled: policy.network === 'none' ? true : undefined,
    HostConfig: {
      ...CONFINEMENT,
      NetworkMode: policy.network,
      GroupAdd: owner.groups.filter(g => g !== owner.gid).map(String),
      Mounts: mounts(req),
      CapAdd: policy.capAdd.length ? policy.capAdd : undefined,
      Devices: [
        ...policy.devices.map(d => ({ PathOnHost: d.path, PathInContainer: d.path, CgroupPermissions: d.permissions ?? 'rwm' })),
        ...(req.gpus && !req.gpus.runtime ? req.gpus.devices.map(d => ({ PathOnHost: d, PathInContainer: `/dev/${basename(d)}`, CgroupPermissions: 'rw' })) : []),
      ],
      DeviceRequests: req.gpus?.runtime ? [{ Driver: 'nvidia', DeviceIDs: req.gpus.indices.map(String), Capabilities: [['gpu']] }] : undefined,
      ReadonlyRootfs: policy.readOnlyRootfs,
      Tmpfs: policy.readOnlyRootfs ? { '/tmp': `rw,nosuid,nodev,mode=1777,size=${policy.tmpSize}` } : undefined,
      PidsLimit: policy.pidsLimit,
      CgroupParent: policy.cgroupParent === 'torque' ? `/torque/${job.jobId}` : undefined,
      Ulimits: [...containerUlimits(request), ...(policy.memlock ? [memlock(policy.memlock)] : [])],
      ...limits,
      // MPI's shared-memory transports live in /dev/shm: as large as the job's memory (it
      // counts against it), not the engine's 64 MB.
      ShmSize: policy.shmSize ?? limits.Memory ?? Math.floor((req.node.hostMemory ?? 2 * 64 * 1024 ** 2) / 2),
    },
  }
}

/** RLIMIT_MEMLOCK of the job's processes: RDMA (InfiniBand) registers memory it pins. */
function memlock(value: number | 'unlimited') {
  const bytes = value === 'unlimited' ? -1 : value
  return { Name: 'memlock', Soft: bytes, Hard: bytes }
}

type Mount = NonNullable<NonNullable<ContainerCreateSpec['HostConfig']>['Mounts']>[number]

function mounts(req: ContainerRequest): Mount[] {
  const { policy, paths } = req
  const bind = (source: string, target: string, readOnly: boolean): Mount => ({ Type: 'bind', Source: source, Target: target, ReadOnly: readOnly })
  // pbs_mom's own files of this job, below PBS_HOME: mounted one by one, read-only.
  const list = [bind(paths.accounts?.passwd ?? '/etc/passwd', '/etc/passwd', true), bind(paths.accounts?.group ?? '/etc/group', '/etc/group', true)]
  if (paths.nodeFile) list.push(bind(paths.nodeFile, paths.nodeFile, true))
  if (paths.script) {
    if (!isWithin(paths.script, `${paths.momPriv}/jobs`)) throw new PolicyError(`job script ${paths.script} is not in ${paths.momPriv}/jobs`)
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
