// The Podman adapter: rootful `podman system service` through its Docker-compatible API,
// which is the Docker adapter's wherever Podman answers as Docker does. What differs is
// here (docs/admin.md, "Podman"): cgroup names, limits updates and the runtime a container
// runs under come from Podman's own (libpod) API; runtimes are those whose program exists.
import { existsSync } from 'node:fs'
import { DockerEngine, type DockerOptions } from './docker.ts'
import type { ContainerDetails, EngineDescription, LimitsUpdate } from './engine.ts'

/** The libpod API version asked for: Podman 4.0 and later serve it. */
const LIBPOD = '/v4.0.0/libpod'
/** CFS period Podman uses when given a quota alone, µs. */
const CPU_PERIOD = 100_000

export class PodmanEngine extends DockerEngine {
  constructor(options: Omit<DockerOptions, 'product'>) {
    super({ ...options, product: 'Podman' })
  }

  /** cgroupfs names the directory libpod-<id>, systemd a libpod-<id>.scope (conmon's cgroup is not the container's). */
  override cgroupNames(id: string): string[] {
    return /^[0-9a-f]{64}$/.test(id) ? [`libpod-${id}`, `libpod-${id}.scope`] : []
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

  private libpod<T>(what: string, method: 'GET' | 'POST', path: string, body?: object): Promise<T> {
    return this.call(what, signal => new Promise<T>((resolve, reject) => {
      this.docker.modem.dial({
        path: `${LIBPOD}${path}`, method, options: body ?? {}, abortSignal: signal,
        statusCodes: { 200: true, 201: true, 204: true, 400: 'bad request', 404: 'no such container', 500: 'server error' },
      }, (err: unknown, data: unknown) => (err ? reject(err) : resolve(data as T)))
    }))
  }
}
