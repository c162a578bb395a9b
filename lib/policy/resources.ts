// The container limits a job's resource request (torque/request.ts) becomes under its
// queue's policy. Pure: no I/O.
import { PolicyError, UsageError } from '../errors.ts'
import { formatBytes } from '../format.ts'
import type { JobRequest } from '../torque/request.ts'
import type { Rlimit } from '../torque/rlimits.ts'
import type { RlimitCeilings } from '../host/grantable.ts'

/** The engine's smallest memory limit (6 MiB). */
export const MIN_MEMORY = 6 * 1024 ** 2

export interface LimitsPolicy {
  cpu: 'quota' | 'cpuset' | 'none'
  defaultCpus: number
  maxCpus?: number
  /** bytes */
  defaultMem?: number
  maxMem?: number
}

/** A container's memory and CPU limits, in cbatch's terms (each engine adapter translates them). */
export interface ContainerLimits {
  memoryBytes?: number
  /** Memory plus swap, at least memoryBytes. */
  memorySwapBytes?: number
  /** A CPU quota, in CPUs. */
  cpus?: number
  /** The CPUs it may run on, as cpuset.cpus says them (0,2-3). */
  cpuset?: string
}

export interface NodeFacts {
  /** PBS_NODENUM: 0 on the mother superior, 1, 2, ... on sister nodes. */
  number?: number
  /** A sister's share before its job file said where the job's slots are (torque/nodes.ts). */
  provisional?: boolean
  /** Processors (slots) of the job on this node. */
  ppnHere?: number
  /** PBS_NP: processors of the job on all its nodes; `mem` and `vmem` are shared by them. */
  npTotal?: number
  /** Bytes of memory of this node. */
  hostMemory?: number
  /** CPUs of this node: a CPU quota cannot exceed them. */
  hostCpus?: number
  /** The cpuset TORQUE made for the job (cpuset.cpus of its cgroup), for `cpu: cpuset`. */
  torqueCpuset?: string
  /** The most nofile and nproc the engine can grant on this node (host/grantable.ts). */
  rlimitCeilings?: RlimitCeilings
}

/** CPUs of the job on this node. */
function cpusOf(request: JobRequest, facts: NodeFacts, fallback: number): number {
  return facts.ppnHere ?? request.nodes[0]?.ppn ?? request.ncpus ?? request.procs ?? fallback
}

export function containerLimits(request: JobRequest, policy: LimitsPolicy, facts: NodeFacts = {}): ContainerLimits {
  const cpus = cpusOf(request, facts, policy.defaultCpus)
  if (policy.maxCpus !== undefined && cpus > policy.maxCpus) {
    throw new PolicyError(`the job asks for ${cpus} CPUs on this node; its queue allows at most ${policy.maxCpus}`)
  }
  // mem is the job's total; pmem is per process (per ppn slot).
  const perSlot = (bytes: number, name: string) => {
    if (!Number.isSafeInteger(bytes * cpus)) throw new UsageError(`${name} for ${cpus} CPUs is too large`)
    return bytes * cpus
  }
  // A job's mem and vmem span all its nodes: each node's container gets its share, by ppn.
  const share = (bytes: number) => (facts.ppnHere && facts.npTotal && facts.npTotal > facts.ppnHere
    ? Math.floor(bytes * facts.ppnHere / facts.npTotal) : bytes)
  const memory = request.mem !== undefined ? share(request.mem) : request.pmem !== undefined ? perSlot(request.pmem, 'pmem') : policy.defaultMem
  const virtual = request.vmem !== undefined ? share(request.vmem) : request.pvmem !== undefined ? perSlot(request.pvmem, 'pvmem') : undefined
  const limits: ContainerLimits = {}
  const ceiling = memory ?? virtual
  if (ceiling !== undefined) {
    if (policy.maxMem !== undefined && ceiling > policy.maxMem) {
      throw new PolicyError(`the job asks for ${formatBytes(ceiling)} of memory; its queue allows at most ${formatBytes(policy.maxMem)}`)
    }
    if (Math.min(ceiling, virtual ?? ceiling) < MIN_MEMORY) {
      throw new PolicyError(`the job asks for ${formatBytes(Math.min(ceiling, virtual ?? ceiling))} of memory; a container needs at least ${formatBytes(MIN_MEMORY)}`)
    }
    limits.memoryBytes = Math.min(ceiling, virtual ?? ceiling)
    // Memory plus swap: vmem when given, else no swap at all, so `mem` means what it says.
    limits.memorySwapBytes = Math.max(limits.memoryBytes, virtual ?? 0)
  }
  // More CPUs than the node has is all of them: the engine refuses a larger quota.
  if (policy.cpu === 'quota') limits.cpus = Math.min(cpus, facts.hostCpus ?? cpus)
  if (policy.cpu === 'cpuset') {
    if (!facts.torqueCpuset) {
      throw new PolicyError('the queue pins jobs to TORQUE\'s cpuset, but TORQUE made none for this job (is pbs_mom built with cgroups?)')
    }
    limits.cpuset = facts.torqueCpuset
  }
  return limits
}

/** Rlimits of the container's processes, by prlimit(1)'s names (cpu, fsize, memlock...). */
export type ContainerRlimits = Record<string, Rlimit>

/**
 * The rlimits pbs_mom gives a job's processes (mom_set_limits) that a container can take:
 * `pcput` -> cpu, `file` -> fsize. The memory ones are the container's cgroup limits
 * instead (`mem`/`pmem` its memory, `vmem`/`pvmem` its memory + swap): the engine cannot
 * set RLIMIT_AS at all, and RLIMIT_DATA on a container also binds the runtime that starts
 * it (runc cannot load its seccomp filter under 48 MB).
 */
export function containerRlimits(request: JobRequest): ContainerRlimits {
  return {
    ...(request.pcput !== undefined ? { cpu: { soft: request.pcput, hard: request.pcput } } : {}),
    ...(request.file !== undefined ? { fsize: { soft: request.file, hard: request.file } } : {}),
  }
}

/** The largest values the kernel takes: fs.nr_open's bound, and PID_MAX_LIMIT tasks. */
export const RLIMIT_BOUNDS = { nofile: 1073741816, nproc: 4194304 }

/**
 * The queue's open files and processes per job process, soft = hard (a job cannot raise
 * what it was given), and never more than the engine can grant: without them a container
 * inherits whatever the engine's daemon has (Podman asks 1048576 of each, which fails
 * where root cannot raise rlimits).
 */
export function countRlimits(policy: { nofile: number; nproc: number }, ceilings: RlimitCeilings = {}): ContainerRlimits {
  const value = (wanted: number, ceiling?: number) => Math.min(wanted, ceiling ?? wanted)
  const nofile = value(policy.nofile, ceilings.nofile)
  const nproc = value(policy.nproc, ceilings.nproc)
  return { nofile: { soft: nofile, hard: nofile }, nproc: { soft: nproc, hard: nproc } }
}
