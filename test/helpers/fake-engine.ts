// An in-memory container engine for unit tests of the job's life: containers are records,
// an exec echoes what it was given and ends with a chosen status. The real engine is the
// integration tests' business; this one makes orchestration testable in milliseconds.
import type { ExpectedBind } from '../../lib/host/mounts.ts'
import { PassThrough, type Writable } from 'node:stream'
import type { ContainerSpec, ContainerDetails, Engine, EngineDescription, ExecRequest, ExecSession, JobContainer, LimitsUpdate, NodeImage, PullOptions } from '../../lib/engine/engine.ts'

export interface FakeContainer extends ContainerDetails {
  spec: ContainerSpec
}

export class FakeEngine implements Engine {
  readonly containers = new Map<string, FakeContainer>()
  readonly images = new Set<string>()
  readonly execs: (ExecRequest & { container: string })[] = []
  readonly calls: string[] = []
  /** Exit status of the next execs. */
  execStatus = 0
  /** Host pid the containers report: this process, whose /proc/<pid>/root is the host's /. */
  pid = process.pid
  private next = 0

  async ping(): Promise<void> {
    this.calls.push('ping')
  }

  /** The engine's container runtimes. */
  runtimeNames = ['runc']

  async runtimes(): Promise<string[]> {
    this.calls.push('runtimes')
    return this.runtimeNames
  }

  /** Every runtime it lists, it gives a container. */
  async runtimeUnusable(runtime: string): Promise<string | undefined> {
    this.calls.push(`runtimeUnusable ${runtime}`)
    return undefined
  }

  /** What the engine says of itself (its runtimes: runtimeNames, each at /usr/bin/<name>). */
  description: Omit<EngineDescription, 'runtimes'> = { product: 'Docker', version: '26.1.5', apiVersion: '1.45', cgroupVersion: '2', cgroupDriver: 'systemd', liveRestore: true, dataRoot: '/var/lib/docker', defaultRuntime: 'runc' }

  async describe(): Promise<EngineDescription> {
    this.calls.push('describe')
    return { ...this.description, runtimes: this.runtimeNames.map(name => ({ name, path: `/usr/bin/${name}`, args: [] })) }
  }

  async hasImage(ref: string): Promise<boolean> {
    this.calls.push(`hasImage ${ref}`)
    return this.images.has(ref)
  }

  /** Failures of the next pulls, in turn (then they succeed). */
  pullFailures: Error[] = []
  /** Platform of every image, as the engine reports it. */
  platform = { os: 'linux', architecture: process.arch === 'x64' ? 'amd64' : process.arch }

  async pullImage(ref: string, options: PullOptions = {}): Promise<void> {
    this.calls.push(`pullImage ${ref}${options.auth ? ` as ${options.auth.username}` : ''}`)
    const failure = this.pullFailures.shift()
    if (failure) throw failure
    this.images.add(ref)
  }

  async imagePlatform(ref: string): Promise<{ os: string; architecture: string } | undefined> {
    this.calls.push(`imagePlatform ${ref}`)
    return this.images.has(ref) ? this.platform : undefined
  }

  /** The node's images, one per reference in `images`, each its own size and id. */
  async listImages(): Promise<NodeImage[]> {
    return [...this.images].map(ref => ({ id: `sha256:${ref}`, references: [ref], size: 1024, created: new Date(0) }))
  }

  async imagesInUse(): Promise<Set<string>> {
    return new Set([...this.containers.values()].map(c => c.imageId))
  }

  async removeImage(reference: string): Promise<void> {
    this.calls.push(`removeImage ${reference}`)
    this.images.delete(reference)
  }

  /**
   * The prologue's mount proof for this engine, which mounts nothing: every bind expected is
   * one the last container was asked for, at its target, read-only as asked.
   */
  readonly proveBinds = (_pid: number, binds: ExpectedBind[]): void => {
    const asked = [...this.containers.values()].at(-1)?.spec.mounts ?? []
    for (const bind of binds) {
      if (!asked.some(m => m.target === bind.target && m.readOnly === bind.readOnly)) throw new Error(`fake engine: no bind at ${bind.target}`)
    }
    if (binds.length !== asked.length) throw new Error(`fake engine: ${asked.length} binds asked, ${binds.length} expected`)
  }

  async run(spec: ContainerSpec): Promise<string> {
    const id = (++this.next).toString(16).padStart(64, '0')
    this.calls.push(`run ${spec.name}`)
    this.containers.set(id, {
      id, name: spec.name, labels: { ...spec.labels }, state: 'running', running: true, user: spec.user, image: spec.image,
      imageId: `sha256:${spec.image}`, pid: this.pid, runtime: spec.runtime ?? this.description.defaultRuntime, entrypoint: [], oomKilled: false, startedAt: new Date(), created: new Date(), spec,
    })
    return id
  }

  async findByLabel(key: string): Promise<JobContainer[]> {
    return [...this.containers.values()].filter(c => key in c.labels)
  }

  async inspect(idOrName: string): Promise<ContainerDetails | undefined> {
    return this.containers.get(idOrName) ?? [...this.containers.values()].find(c => c.name === idOrName)
  }

  async imageDigest(imageId: string): Promise<string | undefined> {
    return `${imageId.replace(/^sha256:/, '')}@sha256:${'f'.repeat(64)}`
  }

  async updateLimits(id: string, limits: LimitsUpdate): Promise<void> {
    this.calls.push(`updateLimits ${id.slice(-4)} ${JSON.stringify(limits)}`)
    const container = this.containers.get(id)
    if (container) container.spec = { ...container.spec, limits: { ...container.spec.limits, ...limits } }
  }

  async remove(id: string): Promise<void> {
    this.calls.push(`remove ${id}`)
    this.containers.delete(id)
  }

  async pathExists(_id: string, path: string): Promise<boolean> {
    return path !== '/bin/bash'
  }

  cgroupNames(id: string): string[] {
    return [id]
  }

  /** An exec that writes its command line to stdout, what it read to stderr, and ends. */
  async exec(id: string, request: ExecRequest): Promise<ExecSession> {
    this.execs.push({ ...request, container: id })
    const stream = new PassThrough()
    let input = ''
    let ended = false
    const status = this.execStatus
    stream.on('data', d => (input += d))
    return {
      stream,
      demux: (stdout: Writable, stderr: Writable) => {
        stdout.write(`${request.cmd.join(' ')}\n`)
        stream.on('finish', () => {
          stderr.write(input)
          ended = true
          stream.emit('end')
        })
      },
      resize: async () => undefined,
      inspect: async () => ({ pid: 0, running: !ended, exitCode: ended ? status : null }),
    }
  }
}

/** A container spec with what a test names, the rest as a plain job container has it. */
export function testSpec(spec: Pick<ContainerSpec, 'name' | 'image' | 'labels'> & Partial<ContainerSpec>): ContainerSpec {
  return {
    entrypoint: false, command: ['sleep', 'infinity'], env: [], user: '65534:65534', groups: [], network: 'none', mounts: [], devices: [],
    capAdd: [], readOnlyRootfs: true, limits: {}, rlimits: {}, shmSize: 64 * 1024 ** 2, ...spec,
  }
}
