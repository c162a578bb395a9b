// The Podman adapter: rootful `podman system service` through its Docker-compatible API,
// which is the Docker adapter's wherever Podman answers as Docker does. What differs is
// here (docs/admin.md, "Podman"): containers are made, cgroup names, limits updated and the
// runtime a container runs under read through Podman's own (libpod) API; runtimes are those
// whose program exists.
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { ContainerRefusedError, type EngineError } from '../errors.ts'
import { CONFINEMENT } from '../policy/security.ts'
import { DockerEngine, refused, type DockerOptions } from './docker.ts'
import type { ContainerDetails, ContainerSpec, EngineDescription, ExecRequest, ExecSession, LimitsUpdate } from './engine.ts'

/** The libpod API version asked for: Podman 4.0 and later serve it. */
const LIBPOD = '/v4.0.0/libpod'
/** CFS period Podman uses when given a quota alone, µs. */
const CPU_PERIOD = 100_000

/**
 * A job's container spec as libpod's create request (its SpecGenerator), with the
 * confinement every job container has. Not the compatible API's create: for a bind source
 * that is missing there (an owner's path swapped away in a race), Podman makes the
 * directory, as root, following any link on the way; libpod's refuses the container.
 */
export function podmanSpec(spec: ContainerSpec, unlimited: number | string = 'unlimited'): Record<string, unknown> {
  const { limits } = spec
  return {
    name: spec.name,
    image: spec.image,
    // Absent: the image's; empty: none.
    ...(spec.entrypoint ? {} : { entrypoint: [] }),
    command: spec.command,
    env: Object.fromEntries(spec.env.map(e => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)])),
    user: spec.user,
    groups: spec.groups,
    labels: spec.labels,
    ...(spec.hostname === undefined ? {} : { hostname: spec.hostname }),
    netns: { nsmode: spec.network },
    ...(spec.runtime === undefined ? {} : { oci_runtime: spec.runtime }),
    mounts: [
      ...spec.mounts.map(m => ({ type: 'bind', source: m.source, destination: m.target, options: ['rbind', m.readOnly ? 'ro' : 'rw'] })),
      ...(spec.tmpSize === undefined ? [] : [{ type: 'tmpfs', source: 'tmpfs', destination: '/tmp', options: ['rw', 'nosuid', 'nodev', 'mode=1777', `size=${spec.tmpSize}`] }]),
    ],
    // Container Device Interface names for the GPUs (Podman has no Docker device requests).
    devices: [...spec.devices.map(d => ({ path: `${d.host}:${d.container}:${d.permissions}` })),
      ...(spec.gpus?.ids ?? []).map(id => ({ path: `nvidia.com/gpu=${id}` }))],
    cap_add: spec.capAdd,
    // CONFINEMENT, in libpod's terms.
    init: CONFINEMENT.Init,
    cap_drop: [...CONFINEMENT.CapDrop],
    no_new_privileges: CONFINEMENT.SecurityOpt.includes('no-new-privileges'),
    privileged: CONFINEMENT.Privileged,
    ipcns: { nsmode: CONFINEMENT.IpcMode },
    log_configuration: { driver: CONFINEMENT.LogConfig.Type },
    read_only_filesystem: spec.readOnlyRootfs,
    ...(spec.cgroupParent === undefined ? {} : { cgroup_parent: spec.cgroupParent }),
    // conmon stays in the service's cgroup. Else cgroupfs puts it in <cgroup parent>/conmon,
    // which no one removes: below a job's TORQUE cgroup, pbs_mom could never remove that.
    cgroups_mode: 'no-conmon',
    r_limits: Object.entries(spec.rlimits).map(([name, { soft, hard }]) =>
      ({ type: name, soft: soft === 'unlimited' ? unlimited : soft, hard: hard === 'unlimited' ? unlimited : hard })),
    // libpod leaves it to what conmon has unless told; Docker's create sets 0.
    oom_score_adj: 0,
    resource_limits: {
      ...(limits.memoryBytes === undefined ? {} : { memory: { limit: limits.memoryBytes, ...(limits.memorySwapBytes === undefined ? {} : { swap: limits.memorySwapBytes }) } }),
      ...(limits.cpus === undefined && limits.cpuset === undefined ? {} : {
        cpu: {
          ...(limits.cpus === undefined ? {} : { quota: Math.round(limits.cpus * CPU_PERIOD), period: CPU_PERIOD }),
          ...(limits.cpuset === undefined ? {} : { cpus: limits.cpuset }),
        },
      }),
      ...(spec.pidsLimit === undefined ? {} : { pids: { limit: spec.pidsLimit } }),
    },
    shm_size: spec.shmSize,
  }
}

/**
 * The request's text, RLIM_INFINITY in it as the unsigned 64-bit number it is, which no
 * JavaScript number holds: written in place of a mark no other value of the request can be.
 */
export function podmanRequestBody(spec: ContainerSpec): Buffer {
  const mark = `cbatch-rlim-infinity-${randomUUID()}`
  return Buffer.from(JSON.stringify(podmanSpec(spec, mark)).replaceAll(`"${mark}"`, '18446744073709551615'))
}

export class PodmanEngine extends DockerEngine {
  constructor(options: Omit<DockerOptions, 'product'>) {
    super({ ...options, product: 'Podman' })
  }

  /** cgroupfs names the directory libpod-<id>, systemd a libpod-<id>.scope (conmon's cgroup is not the container's). */
  override cgroupNames(id: string): string[] {
    return /^[0-9a-f]{64}$/.test(id) ? [`libpod-${id}`, `libpod-${id}.scope`] : []
  }

  protected override async create(spec: ContainerSpec): Promise<string> {
    const made = await this.libpod<{ Id: string }>(`create container ${spec.name}`, 'POST', '/containers/create', podmanRequestBody(spec)).catch(err => {
      const message = ((err as EngineError).cause as { json?: { message?: string } } | undefined)?.json?.message ?? ''
      // A bind source that is not there (Docker answers 400): the engine will never make this container as asked.
      if (/^statfs .*: (no such file or directory|not a directory|too many levels of symbolic links)$/s.test(message)) {
        throw new ContainerRefusedError('the Podman engine refused the job\'s container', message, { cause: err })
      }
      return refused(err, 'Podman')
    })
    return made.Id
  }

  /** The compatible API has no container update: libpod's takes the OCI resources. */
  override async updateLimits(id: string, limits: LimitsUpdate): Promise<void> {
    const memory = limits.memoryBytes === undefined ? undefined
      : { limit: limits.memoryBytes, ...(limits.memorySwapBytes === undefined ? {} : { swap: limits.memorySwapBytes }) }
    const cpu = {
      ...(limits.cpus === undefined ? {} : { quota: Math.round(limits.cpus * CPU_PERIOD), period: CPU_PERIOD }),
      ...(limits.cpuset === undefined ? {} : { cpus: limits.cpuset }),
    }
    await this.libpod(`update container ${id}`, 'POST', `/containers/${encodeURIComponent(id)}/update`,
      { ...(memory ? { memory } : {}), ...(Object.keys(cpu).length ? { cpu } : {}) })
  }

  /**
   * Podman gives an exec run as `uid:gid` none of the container's groups (Docker gives it
   * them); one run as a bare uid, the gid and groups the container's /etc/passwd and
   * /etc/group give that uid. A job's container names its owner there once, with the job's
   * gid, in exactly their groups (host/accounts.ts): so the uid alone.
   */
  override async exec(id: string, request: ExecRequest): Promise<ExecSession> {
    return super.exec(id, { ...request, user: request.user.replace(/^(\d+):\d+$/, '$1') })
  }

  /** The compatible inspect says "oci" for every runtime: libpod's names it. */
  override async inspect(id: string): Promise<ContainerDetails | undefined> {
    const details = await super.inspect(id)
    if (!details) return undefined
    const own = await this.libpod<{ OCIRuntime?: string }>(`inspect container ${id}`, 'GET', `/containers/${details.id}/json`)
    return { ...details, runtime: own.OCIRuntime ?? '' }
  }

  /** Podman lists every runtime its configuration knows of, installed or not: only those whose program is here. */
  override async describe(): Promise<EngineDescription> {
    const about = await super.describe()
    return { ...about, runtimes: about.runtimes.filter(r => existsSync(r.path)) }
  }

  override async runtimes(): Promise<string[]> {
    return (await this.describe()).runtimes.map(r => r.name)
  }

  /** Whether a container made asking for a runtime gets it, by runtime: found out once (a failure is not kept). */
  private readonly runtimeTaken = new Map<string, Promise<boolean>>()

  /**
   * Podman's API (4.x, and later ones until its issue 28429 was fixed) ignores the runtime a
   * create asks for: every container gets the service's default. Whether this one does is
   * seen by making a container that never starts.
   */
  override async runtimeUnusable(runtime: string): Promise<string | undefined> {
    const about = await this.describe()
    if (runtime === about.defaultRuntime) return undefined
    if (!this.runtimeTaken.has(runtime)) {
      this.runtimeTaken.set(runtime, this.containerGets(runtime).catch(err => {
        this.runtimeTaken.delete(runtime)
        throw err
      }))
    }
    if (await this.runtimeTaken.get(runtime)!) return undefined
    return `Podman ${about.version} makes every container under its default runtime ${about.defaultRuntime}, whatever the container asks `
      + `(its API ignores a container's runtime): run such queues on nodes whose Podman has ${runtime} as its default (containers.conf [engine] runtime), or on Docker`
  }

  private async containerGets(runtime: string): Promise<boolean> {
    const name = `cbatch-runtime-probe-${randomUUID()}`
    try {
      // Made and inspected, never started: the node's root serves as its root, untouched.
      const { Id } = await this.libpod<{ Id: string }>(`create container ${name}`, 'POST', '/containers/create',
        { name, rootfs: '/', command: ['/nonexistent'], oci_runtime: runtime, netns: { nsmode: 'none' } })
      return (await this.libpod<{ OCIRuntime?: string }>(`inspect container ${name}`, 'GET', `/containers/${Id}/json`)).OCIRuntime === runtime
    } finally {
      // By name: also one whose create the service went on with after this call gave up.
      await this.remove(name).catch(() => undefined)
    }
  }

  /** `body`: an object, or a request's text already made. */
  private libpod<T>(what: string, method: 'GET' | 'POST', path: string, body?: object | Buffer): Promise<T> {
    const request = Buffer.isBuffer(body) ? { file: body, headers: { 'Content-Type': 'application/json' } } : { options: body ?? {} }
    return this.call(what, signal => new Promise<T>((resolve, reject) => {
      this.docker.modem.dial({
        path: `${LIBPOD}${path}`, method, ...request, abortSignal: signal,
        statusCodes: { 200: true, 201: true, 204: true, 400: 'bad request', 404: 'no such container', 409: 'conflict', 500: 'server error' },
      }, (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as T)))
    }))
  }
}
