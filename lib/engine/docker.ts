// The Docker adapter of the runtime seam (engine.ts), and the only module importing dockerode.
// Every call has a deadline; engine faults become EngineError (the job is requeued).
import Docker from 'dockerode'
import { Agent, type AgentOptions } from 'node:http'
import { ContainerRefusedError, EngineError, EngineTimeoutError, ImagePullError, ImageDeniedError, RuntimeMissingError } from '../errors.ts'
import { ImageReference } from '../policy/reference.ts'
import { CONFINEMENT } from '../policy/security.ts'
import type { ContainerLimits } from '../policy/resources.ts'
import type { Limit } from '../torque/rlimits.ts'
import type { ContainerDetails, ContainerSpec, Engine, EngineDescription, EngineObserver, ExecRequest, ExecSession, JobContainer, LimitsUpdate, NodeImage, PullOptions, PullProgress } from './engine.ts'

export interface DockerOptions {
  socket: string
  /** Deadline of one engine call, ms. */
  timeoutMs: number
  onCall?: EngineObserver
  /** Deadline of an image pull, ms. */
  pullTimeoutMs: number
  /** The engine's name in messages (default Docker). */
  product?: string
}

/** A job's container spec as Docker's create request, with the confinement every job container has. */
export function dockerCreateOptions(spec: ContainerSpec): Docker.ContainerCreateOptions {
  return {
    name: spec.name,
    Image: spec.image,
    Entrypoint: spec.entrypoint ? undefined : [],
    Cmd: spec.command,
    Env: spec.env,
    User: spec.user,
    Labels: spec.labels,
    Hostname: spec.hostname,
    NetworkDisabled: spec.network === 'none' ? true : undefined,
    HostConfig: {
      ...CONFINEMENT,
      NetworkMode: spec.network,
      Runtime: spec.runtime,
      GroupAdd: spec.groups,
      Mounts: spec.mounts.map(m => ({ Type: 'bind', Source: m.source, Target: m.target, ReadOnly: m.readOnly })),
      CapAdd: spec.capAdd.length ? spec.capAdd : undefined,
      Devices: spec.devices.map(d => ({ PathOnHost: d.host, PathInContainer: d.container, CgroupPermissions: d.permissions })),
      DeviceRequests: spec.gpus ? [{ Driver: spec.gpus.driver, DeviceIDs: spec.gpus.ids, Capabilities: [['gpu']] }] : undefined,
      ReadonlyRootfs: spec.readOnlyRootfs,
      Tmpfs: spec.tmpSize !== undefined ? { '/tmp': `rw,nosuid,nodev,mode=1777,size=${spec.tmpSize}` } : undefined,
      PidsLimit: spec.pidsLimit,
      CgroupParent: spec.cgroupParent,
      Ulimits: Object.entries(spec.rlimits).map(([Name, { soft, hard }]) => ({ Name, Soft: rlimitValue(soft), Hard: rlimitValue(hard) })),
      ...dockerLimits(spec.limits),
      ShmSize: spec.shmSize,
    },
  }
}

/** Limits in Docker's HostConfig (and container update) fields. */
function dockerLimits(limits: ContainerLimits): Pick<Docker.HostConfig, 'Memory' | 'MemorySwap' | 'NanoCpus' | 'CpusetCpus'> {
  return {
    Memory: limits.memoryBytes,
    MemorySwap: limits.memorySwapBytes,
    NanoCpus: limits.cpus === undefined ? undefined : Math.round(limits.cpus * 1e9),
    CpusetCpus: limits.cpuset,
  }
}

const rlimitValue = (value: Limit) => (value === 'unlimited' ? -1 : value)

/** What registries answer when an image is not there or not for these credentials. */
const REGISTRY_REFUSALS = /unauthorized|authentication required|denied|manifest unknown|not found|no basic auth credentials/i

/** The Docker engine behind a unix socket, through dockerode. */
export class DockerEngine implements Engine {
  // Protected for adapters of Docker-compatible engines (podman.ts), which reuse it.
  protected readonly docker: Docker
  protected readonly options: DockerOptions
  private readonly product: string

  constructor(options: DockerOptions) {
    this.options = options
    this.product = options.product ?? 'Docker'
    // A TLS server name means nothing on a unix socket; left unset, Node derives one per
    // request through an IPv6 pattern whose first use costs a hook ~12 ms.
    this.docker = new Docker({ socketPath: options.socket, agent: new Agent({ servername: '' } as AgentOptions) } as Docker.DockerOptions)
  }

  async ping(): Promise<void> {
    await this.call('ping the engine', signal => (this.docker.ping as (o: object) => Promise<unknown>)({ abortSignal: signal }))
  }

  async runtimes(): Promise<string[]> {
    const info = await this.call('engine info', () => this.docker.info() as Promise<{ Runtimes?: Record<string, unknown> }>)
    return Object.keys(info.Runtimes ?? {})
  }

  async hasImage(ref: string): Promise<boolean> {
    // Image inspect would send an abort signal as a query parameter: the deadline alone guards it.
    return this.call(`inspect image ${ref}`, () => ifFound(this.docker.getImage(ref).inspect().then(() => true), false))
  }

  async pullImage(ref: string, { auth, timeoutMs, onProgress }: PullOptions = {}): Promise<void> {
    await this.call(`pull image ${ref}`, async signal => {
      const stream = await this.docker.pull(ref, { abortSignal: signal, ...(auth ? { authconfig: auth } : {}) })
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()),
          (event: PullProgress & { error?: string }) => {
            if (event.error) reject(new Error(event.error))
            else onProgress?.(event)
          })
      })
    }, timeoutMs ?? this.options.pullTimeoutMs).catch(err => {
      if (err instanceof EngineTimeoutError) throw err
      const detail = detailOf(err)
      // The registry's own refusal will not pass; a registry that is down or failing may.
      if (REGISTRY_REFUSALS.test(detail)) {
        throw new ImageDeniedError(`the registry refused image ${ref} (it does not exist there, or not for these credentials)`, detail, { cause: err })
      }
      throw new ImagePullError(`cannot pull image ${ref}`, detail, { cause: err })
    })
  }

  async imagePlatform(ref: string): Promise<{ os: string; architecture: string } | undefined> {
    const image = await this.call(`inspect image ${ref}`, () => ifFound(this.docker.getImage(ref).inspect(), undefined))
    return image && { os: image.Os, architecture: image.Architecture }
  }

  async describe(): Promise<EngineDescription> {
    const [version, info] = await Promise.all([
      this.call('engine version', () => this.docker.version()),
      this.call('engine info', () => this.docker.info() as Promise<Record<string, unknown>>),
    ])
    const runtimes = Object.entries((info.Runtimes ?? {}) as Record<string, { path?: string; runtimeArgs?: string[] }>)
      .map(([name, r]) => ({ name, path: r.path ?? '', args: r.runtimeArgs ?? [] }))
    return {
      product: version.Components?.some(c => c.Name === 'Podman Engine') ? 'Podman' : 'Docker',
      version: version.Version, apiVersion: version.ApiVersion,
      cgroupVersion: String(info.CgroupVersion ?? '1'), cgroupDriver: String(info.CgroupDriver ?? ''),
      liveRestore: info.LiveRestoreEnabled === true, dataRoot: String(info.DockerRootDir ?? ''),
      runtimes, defaultRuntime: String(info.DefaultRuntime ?? 'runc'),
    }
  }

  async listImages(): Promise<NodeImage[]> {
    const list = await this.call('list images', signal => this.docker.listImages({ abortSignal: signal } as Docker.ListImagesOptions))
    return list.map(i => ({
      id: i.Id, references: (i.RepoTags ?? []).filter(t => t !== '<none>:<none>'), size: i.Size, created: new Date(i.Created * 1000),
    }))
  }

  /** Ids of the images any container of the node (running or not) was made from. */
  async imagesInUse(): Promise<Set<string>> {
    const list = await this.call('list containers', signal => this.docker.listContainers({ all: true, abortSignal: signal }))
    return new Set(list.map(c => c.ImageID))
  }

  /** Removes one name of an image; the image goes with its last name. Never forced. */
  async removeImage(reference: string): Promise<void> {
    await this.call(`remove image ${reference}`, signal => this.docker.getImage(reference).remove({ abortSignal: signal }))
  }

  /** Docker gives a container the runtime its create names (`HostConfig.Runtime`). */
  async runtimeUnusable(_runtime: string): Promise<string | undefined> {
    return undefined
  }

  /**
   * Creates and starts a container; removes it again when it cannot start, or when the
   * engine made it under another runtime than the spec's.
   */
  async run(spec: ContainerSpec): Promise<string> {
    const id = await this.create(spec)
    try {
      // Never started under another runtime than the queue's, whatever the engine did with the ask.
      if (spec.runtime !== undefined) {
        const details = await this.inspect(id)
        if (!details) throw new EngineError(`the ${this.product} engine lost the job's container ${spec.name} before it started`)
        const made = details.runtime
        if (made !== spec.runtime) {
          throw new RuntimeMissingError(`the ${this.product} engine made the job's container under the runtime ${made || '(none said)'}, not ${spec.runtime}, which its queue names; tell the node's admin`)
        }
      }
      await this.call(`start container ${spec.name}`, signal => this.docker.getContainer(id).start({ abortSignal: signal })).catch(err => refused(err, this.product))
    } catch (err) {
      await this.remove(id).catch(() => undefined)
      throw err
    }
    return id
  }

  /** Makes the container, not started; its id. */
  protected async create(spec: ContainerSpec): Promise<string> {
    const container = await this.call(`create container ${spec.name}`, signal =>
      this.docker.createContainer({ ...dockerCreateOptions(spec), abortSignal: signal } as Docker.ContainerCreateOptions)).catch(err => refused(err, this.product))
    return container.id
  }

  /** Containers (any state) that carry the label `key`. */
  async findByLabel(key: string): Promise<JobContainer[]> {
    const list = await this.call(`list containers with ${key}`, signal =>
      this.docker.listContainers({ all: true, filters: { label: [key] }, abortSignal: signal }))
    // The engine's filter is a convenience; the exact match is ours.
    return list.filter(c => key in (c.Labels ?? {})).map(c => ({
      id: c.Id, name: (c.Names?.[0] ?? '').replace(/^\//, ''), labels: c.Labels ?? {}, state: c.State, created: new Date(c.Created * 1000),
    }))
  }

  /** A container by id or name; undefined when there is none. */
  async inspect(id: string): Promise<ContainerDetails | undefined> {
    const info = await this.call(`inspect container ${id}`, signal =>
      ifFound(this.docker.getContainer(id).inspect({ abortSignal: signal }), undefined))
    if (!info) return undefined
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      labels: info.Config.Labels ?? {},
      state: info.State.Status,
      running: info.State.Running,
      user: info.Config.User,
      image: info.Config.Image,
      imageId: info.Image,
      pid: info.State.Pid,
      runtime: info.HostConfig.Runtime ?? '',
      entrypoint: typeof info.Config.Entrypoint === 'string' ? [info.Config.Entrypoint] : info.Config.Entrypoint ?? [],
      oomKilled: info.State.OOMKilled,
      startedAt: new Date(info.State.StartedAt),
      created: new Date(info.Created),
    }
  }

  /** The registry digest of an image (`repo@sha256:...`), if it came from a registry. */
  async imageDigest(imageId: string, reference?: string): Promise<string | undefined> {
    const digests = await this.call(`inspect image ${imageId}`, async () => (await this.docker.getImage(imageId).inspect()).RepoDigests ?? [])
    // One image can be in several repositories: the digest of the one the job named.
    const repository = reference && ImageReference.of(reference).repository
    return digests.find(d => d.startsWith(`${repository}@`)) ?? digests[0]
  }

  async updateLimits(id: string, limits: LimitsUpdate): Promise<void> {
    await this.call(`update container ${id}`, signal => this.docker.getContainer(id).update({ ...dockerLimits(limits), abortSignal: signal }))
  }

  /** Kills and removes a container whatever its state; a missing one is fine. */
  async remove(id: string): Promise<void> {
    await this.call(`remove container ${id}`, async signal => {
      try {
        await this.docker.getContainer(id).remove({ force: true, v: true, abortSignal: signal })
      } catch (err) {
        // 404: already gone; 409: removal already in progress (a second epilogue).
        if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err
      }
    })
  }

  /** Whether `path` exists in the container's filesystem (no process is started). */
  async pathExists(id: string, path: string): Promise<boolean> {
    return this.call(`stat ${path} in ${id}`, signal =>
      ifFound(this.docker.getContainer(id).infoArchive({ path, abortSignal: signal }).then(() => true), false))
  }

  async exec(id: string, request: ExecRequest): Promise<ExecSession> {
    const exec = await this.call(`create exec in ${id}`, signal => this.docker.getContainer(id).exec({
      Cmd: request.cmd, Env: request.env, WorkingDir: request.workingDir, User: request.user,
      AttachStdin: true, AttachStdout: true, AttachStderr: true, Tty: request.tty, abortSignal: signal,
    } as Docker.ExecCreateOptions))
    const stream = await this.call(`start exec in ${id}`, () => exec.start({ hijack: true, stdin: true, Tty: request.tty }))
    return {
      stream,
      demux: (stdout, stderr) => (request.tty ? stream.pipe(stdout, { end: false }) : this.docker.modem.demuxStream(stream, stdout, stderr)),
      resize: async (rows, columns) => {
        await this.call(`resize exec in ${id}`, () => exec.resize({ h: rows, w: columns }))
      },
      inspect: async () => {
        const info = await this.call(`inspect exec in ${id}`, signal => exec.inspect({ abortSignal: signal }))
        return { pid: info.Pid, running: info.Running, exitCode: info.ExitCode }
      },
    }
  }

  /** cgroupfs names the directory by the id, systemd by a scope. */
  cgroupNames(id: string): string[] {
    return /^[0-9a-f]{64}$/.test(id) ? [id, `docker-${id}.scope`] : []
  }

  /** Runs one engine call under a deadline, mapping its faults to EngineError. */
  protected async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, ms = this.options.timeoutMs): Promise<T> {
    const controller = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort()
        reject(new EngineTimeoutError(`the ${this.product} engine did not answer in time (${what}, ${ms / 1000} s)`))
      }, ms)
    })
    const started = performance.now()
    let ok = false
    try {
      const answer = await Promise.race([fn(controller.signal), timeout])
      ok = true
      return answer
    } catch (err) {
      if (err instanceof EngineError) throw err
      throw new EngineError(`${this.product} engine error (${what})`, detailOf(err, this.options.socket), { cause: err })
    } finally {
      clearTimeout(timer)
      this.options.onCall?.(what, Math.round(performance.now() - started), ok)
    }
  }
}

/** 400: the engine will never make this container as asked (a bind source that is gone, a bad limit). */
export function refused(err: EngineError, product: string): never {
  if (statusOf(err.cause) === 400) throw new ContainerRefusedError(`the ${product} engine refused the job's container`, detailOf(err.cause), { cause: err })
  throw err
}

/** The engine's answer, or `missing` when it says there is no such thing (404). */
async function ifFound<T, M>(answer: Promise<T>, missing: M): Promise<T | M> {
  try {
    return await answer
  } catch (err) {
    if (statusOf(err) === 404) return missing
    throw err
  }
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode
}

function detailOf(err: unknown, socket?: string): string {
  const e = err as { code?: string; json?: { message?: string }; message?: string }
  if (socket && (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')) return `engine not reachable at ${socket} (${e.code})`
  return e.json?.message ?? e.message ?? String(err)
}
