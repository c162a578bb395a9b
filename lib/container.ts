// The job's container: its name and labels, how it is found, and its create request, a
// pure function of the job, its owner and its queue's policy. Everything a container may
// do is decided here, in one place.
import { createHash } from 'node:crypto'
import { posix } from 'node:path'
import type { QueuePolicy } from './config.ts'
import type { ContainerCreateSpec, ContainerDetails, Engine } from './engine.ts'
import { PolicyError } from './errors.ts'
import type { Identity } from './identity.ts'
import type { JobFacts } from './torque.ts'
import { parseSize } from './torque.ts'
import { containerLimits, parseRequest, type NodeFacts } from './resources.ts'
import { exposedBy, isWithin } from './paths.ts'

export const LABEL = {
  job: 'cbatch.job',
  user: 'cbatch.user',
  uid: 'cbatch.uid',
  queue: 'cbatch.queue',
  version: 'cbatch.version',
  shellFallback: 'cbatch.shell-fallback',
  scratch: 'cbatch.scratch',
} as const

export interface JobPaths {
  /** PBS_O_WORKDIR: where qsub was run. */
  workDir?: string
  /** PBS_NODEFILE */
  nodeFile?: string
  /** TMPDIR made by mom's $tmpdir. */
  tmpDir?: string
  /** mom_priv of this pbs_mom: only the job's own script in it may be mounted. */
  momPriv?: string
  /** The job's scratch directory on the host, when the queue gives one. */
  scratchDir?: string
}

export interface ContainerRequest {
  job: JobFacts
  owner: Identity
  policy: QueuePolicy
  paths: JobPaths
  version: string
  hostname: string
  /** The image and extra volumes the job asked for, as its queue allowed them. */
  granted: { image: string; volumes: { source: string; target: string; readOnly: boolean }[] }
  /** What pbs_mom and TORQUE's cgroups tell about the job on this node. */
  node: NodeFacts
  /** Whether a host path exists; paths of the job that do not are not mounted. */
  exists: (path: string) => boolean
}

/** The job id as a Docker container name: sanitised, and kept unique by a hash of the raw id. */
export function containerName(jobId: string): string {
  const safe = jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)
  return `cbatch-${safe}-${createHash('sha256').update(jobId).digest('hex').slice(0, 10)}`
}

/**
 * The job's container, by the name the prologue gave it (one engine call, and names are
 * unique); undefined if there is none, or if what has the name is not labelled this job's.
 */
export async function findJobContainer(engine: Engine, jobId: string): Promise<ContainerDetails | undefined> {
  const found = await engine.inspect(containerName(jobId))
  return found?.labels[LABEL.job] === jobId ? found : undefined
}

export function buildContainerSpec(req: ContainerRequest): ContainerCreateSpec {
  const { job, owner, policy, paths } = req
  if ((owner.uid === 0 || owner.gid === 0) && !policy.allowRoot) {
    throw new PolicyError(`jobs of ${owner.name} (uid ${owner.uid}, gid ${owner.gid}) are not run in containers: root is refused`)
  }
  const scratch: Record<string, string> = policy.scratch && paths.scratchDir ? { [LABEL.scratch]: paths.scratchDir } : {}
  return {
    name: containerName(job.jobId),
    Image: req.granted.image,
    Cmd: policy.holder,
    // The exec'd job shell inherits this.
    Env: policy.scratch && paths.scratchDir ? [`CBATCH_SCRATCH=${policy.scratch.target}`] : [],
    User: `${owner.uid}:${owner.gid}`,
    Labels: {
      [LABEL.job]: job.jobId,
      [LABEL.user]: owner.name,
      [LABEL.uid]: String(owner.uid),
      [LABEL.queue]: job.queue,
      [LABEL.version]: req.version,
      [LABEL.shellFallback]: policy.shellFallback,
      ...scratch,
    },
    // With the host's network the host's name comes along; Docker refuses to set both.
    Hostname: policy.network === 'none' ? req.hostname : undefined,
    NetworkDisabled: policy.network === 'none' ? true : undefined,
    HostConfig: {
      Init: true,
      NetworkMode: policy.network,
      GroupAdd: owner.groups.filter(g => g !== owner.gid).map(String),
      Mounts: mounts(req),
      CapDrop: ['ALL'],
      CapAdd: policy.capAdd.length ? policy.capAdd : undefined,
      // Docker's default seccomp profile stays: nothing here may say seccomp=unconfined.
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      Devices: policy.devices.map(d => ({ PathOnHost: d.path, PathInContainer: d.path, CgroupPermissions: d.permissions ?? 'rwm' })),
      ReadonlyRootfs: policy.readOnlyRootfs,
      Tmpfs: policy.readOnlyRootfs ? { '/tmp': 'rw,nosuid,nodev,mode=1777' } : undefined,
      IpcMode: 'private',
      PidsLimit: policy.pidsLimit,
      LogConfig: { Type: 'none', Config: {} },
      CgroupParent: policy.cgroupParent === 'torque' ? `/torque/${job.jobId}` : undefined,
      ...containerLimits(parseRequest(job.resources), {
        ...policy.limits,
        defaultMem: policy.limits.defaultMem === undefined ? undefined : parseSize(policy.limits.defaultMem),
        maxMem: policy.limits.maxMem === undefined ? undefined : parseSize(policy.limits.maxMem),
      }, req.node),
    },
  }
}

type Mount = NonNullable<NonNullable<ContainerCreateSpec['HostConfig']>['Mounts']>[number]

function mounts(req: ContainerRequest): Mount[] {
  const { job, owner, policy, paths, exists } = req
  const list: Mount[] = []
  const bind = (source: string, target: string, readOnly: boolean) =>
    list.push({ Type: 'bind', Source: source, Target: target, ReadOnly: readOnly })
  // This pbs_mom's own home, wherever it is, is as protected as the default one.
  const pbsHome = paths.momPriv ? posix.dirname(paths.momPriv) : undefined
  const add = (source: string, target: string, readOnly: boolean, what: string) => {
    if (list.some(m => isWithin(target, m.Target) && isWithin(source, m.Source))) return // already visible
    const exposed = exposedBy(source) ?? (pbsHome && (isWithin(source, pbsHome) || isWithin(pbsHome, source)) ? pbsHome : undefined)
    if (exposed) throw new PolicyError(`${what} ${source} cannot be mounted into the job's container (it would expose ${exposed})`)
    bind(source, target, readOnly)
  }
  add('/etc/passwd', '/etc/passwd', true, 'user database')
  add('/etc/group', '/etc/group', true, 'group database')
  if (exists(owner.home)) add(owner.home, owner.home, false, 'home directory')
  for (const [what, path] of [['PBS_O_WORKDIR', paths.workDir], ['TMPDIR', paths.tmpDir]] as const) {
    if (path && exists(path)) add(path, path, false, what)
  }
  // pbs_mom's own files of this job, below PBS_HOME: mounted one by one, read-only.
  if (paths.nodeFile && exists(paths.nodeFile)) bind(paths.nodeFile, paths.nodeFile, true)
  if (job.scriptPath) {
    if (paths.momPriv && !isWithin(job.scriptPath, `${paths.momPriv}/jobs`)) {
      throw new PolicyError(`job script ${job.scriptPath} is not in ${paths.momPriv}/jobs`)
    }
    bind(job.scriptPath, job.scriptPath, true)
  }
  for (const v of policy.volumes) add(v.source, v.target ?? v.source, v.readOnly ?? false, 'volume')
  for (const v of req.granted.volumes) add(v.source, v.target, v.readOnly, 'requested mount')
  if (policy.scratch && paths.scratchDir) bind(paths.scratchDir, policy.scratch.target, false)
  return list
}
