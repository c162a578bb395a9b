// The container-runtime seam: what cbatch asks of a runtime, in its own words. Adapters
// (docker.ts) implement it; open.ts picks one; nothing above lib/engine names a runtime.
import type { Duplex, Writable } from 'node:stream'
import type { ContainerLimits, ContainerRlimits } from '../policy/resources.ts'

/**
 * A job's container in cbatch's terms (job/container.ts builds it); each adapter
 * translates it to its runtime's create request and adds the confinement every job
 * container has (policy/security.ts CONFINEMENT), which no spec can leave out.
 */
export interface ContainerSpec {
  name: string
  image: string
  /** Run the image's ENTRYPOINT around `command`; else `command` alone. */
  entrypoint: boolean
  /** The container's init: the holder that keeps it alive until the epilogue. */
  command: string[]
  env: string[]
  /** `uid:gid` of the holder. */
  user: string
  /** Supplementary group ids. */
  groups: string[]
  labels: Record<string, string>
  /** Set only when the container has a network namespace of its own. */
  hostname?: string
  network: 'none' | 'host'
  /** The engine's name of the OCI runtime to run it under (runsc...); absent: the engine's default. */
  runtime?: string
  mounts: BindMount[]
  devices: DeviceGrant[]
  /** GPUs the runtime's vendor hook hands in (NVIDIA), by the node's indices. */
  gpus?: { driver: 'nvidia'; ids: string[] }
  capAdd: string[]
  readOnlyRootfs: boolean
  /** Bytes of a writable tmpfs /tmp, on a read-only root file system. */
  tmpSize?: number
  pidsLimit?: number
  /** The cgroup the container's is made below (TORQUE's job cgroup). */
  cgroupParent?: string
  limits: ContainerLimits
  rlimits: ContainerRlimits
  /** Bytes of /dev/shm. */
  shmSize: number
}

export interface BindMount {
  source: string
  target: string
  readOnly: boolean
}

export interface DeviceGrant {
  host: string
  container: string
  /** cgroup device permissions: r, w, m. */
  permissions: string
}

export interface JobContainer {
  id: string
  name: string
  labels: Record<string, string>
  state: string
  created: Date
}

export interface ContainerDetails extends JobContainer {
  running: boolean
  /** `uid:gid` the container runs as. */
  user: string
  image: string
  imageId: string
  /** Host pid of the container's init, 0 when not running. */
  pid: number
  /** The OCI runtime that runs it, by the engine's name for it (runc, runsc...). */
  runtime: string
  /** The entrypoint the container was made with (none unless its queue runs the image's). */
  entrypoint: string[]
  oomKilled: boolean
  startedAt: Date
}

export interface ExecRequest {
  cmd: string[]
  env: string[]
  workingDir: string
  user: string
  /** A terminal (interactive jobs): one raw stream instead of stdout and stderr. */
  tty: boolean
}

export interface ExecSession {
  /** Raw multiplexed stream: write stdin to it, read output via `demux`. */
  stream: Duplex
  demux(stdout: Writable, stderr: Writable): void
  /** Sets the terminal size of a tty exec. */
  resize(rows: number, columns: number): Promise<void>
  /** Host pid of the exec'd process (0 until it runs) and, once it ended, its exit code. */
  inspect(): Promise<{ pid: number; running: boolean; exitCode: number | null }>
}

/**
 * What a job's life asks of a container runtime (lifecycle, starter, gc): the seam it is
 * written against, unit-tested with an in-memory engine (test/helpers/fake-engine.ts) and
 * run on Docker through docker.ts. Another runtime (Podman) is another adapter of these
 * interfaces, chosen in open.ts.
 */
export interface ContainerEngine {
  ping(): Promise<void>
  /** Names of the engine's container runtimes (runc, nvidia...). */
  runtimes(): Promise<string[]>
  /**
   * Why a container asking for `runtime`, one of runtimes(), would not get it (an engine may
   * list runtimes it cannot give a single container); undefined when it would.
   */
  runtimeUnusable(runtime: string): Promise<string | undefined>
  /** What the engine says of itself (for `cbatch doctor`; not part of a job's life). */
  describe(): Promise<EngineDescription>
  /** Creates and starts a container; returns its id. */
  run(spec: ContainerSpec): Promise<string>
  findByLabel(key: string): Promise<JobContainer[]>
  inspect(idOrName: string): Promise<ContainerDetails | undefined>
  remove(id: string): Promise<void>
  /** Changes a running container's CPU and memory limits. */
  updateLimits(id: string, limits: LimitsUpdate): Promise<void>
  pathExists(id: string, path: string): Promise<boolean>
  exec(id: string, request: ExecRequest): Promise<ExecSession>
  /**
   * The names a container's cgroup directory has on the host, by driver (none for an id that
   * is not a full container id): how host code (host/proc.ts, torque/cgroups.ts) tells its
   * processes apart without asking the engine, which may be the thing that failed.
   */
  cgroupNames(id: string): string[]
}

/** The node's images, as the runtime keeps them: what a job runs in, and what the image cache manages. */
export interface ImageStore {
  hasImage(ref: string): Promise<boolean>
  /** Pulls an image, with the registry's credentials if given, within `timeoutMs` (default: the engine's pull deadline). */
  pullImage(ref: string, options?: PullOptions): Promise<void>
  /** The OS and architecture an image is built for; undefined if it is not on the node. */
  imagePlatform(ref: string): Promise<{ os: string; architecture: string } | undefined>
  /** The repository digest of an image: of `reference`'s repository when it has several. */
  imageDigest(imageId: string, reference?: string): Promise<string | undefined>
  /** The node's images (the image cache's view). */
  listImages(): Promise<NodeImage[]>
  /** Ids of the images any container of the node (running or not) was made from. */
  imagesInUse(): Promise<Set<string>>
  /** Removes one name of an image; the image goes with its last name. Never forced. */
  removeImage(reference: string): Promise<void>
}

/** One runtime on this node: its containers and its images (open.ts makes it from the config). */
export type Engine = ContainerEngine & ImageStore

/** Told of each engine call as it ends: what, how long (ms), whether it succeeded. */
export type EngineObserver = (what: string, ms: number, ok: boolean) => void

/** The limits a running container's may change to. */
export type LimitsUpdate = ContainerLimits

export interface PullOptions {
  auth?: { username: string; password: string; serveraddress: string }
  timeoutMs?: number
  /** Each progress event of the engine (per layer: Downloading, Pull complete…). */
  onProgress?: (event: PullProgress) => void
}

export interface PullProgress {
  id?: string
  status?: string
  progressDetail?: { current?: number; total?: number }
}

export interface EngineDescription {
  /** What the engine says it is (Docker, Podman): its version endpoint's answer, not the config's. */
  product: 'Docker' | 'Podman'
  version: string
  apiVersion: string
  cgroupVersion: string
  cgroupDriver: string
  liveRestore: boolean
  dataRoot: string
  /** The container runtimes the engine has, and the name of the one containers get unless told. */
  runtimes: EngineRuntime[]
  defaultRuntime: string
}

/** A container runtime of the engine: its name, and the program (and arguments) the engine runs for it. */
export interface EngineRuntime {
  name: string
  path: string
  args: string[]
}

/** An image on the node, as the image cache sees it. */
export interface NodeImage {
  id: string
  /** repo:tag names (none for an untagged image). */
  references: string[]
  size: number
  created: Date
}
