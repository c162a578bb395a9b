// One job as a hook on this node sees it, made once at the hook's edge from what pbs_mom
// hands it: its arguments, its environment, the node file, the gpu file and TORQUE's
// cpuset for it. The rest of cbatch reads this, never PBS_* variables or pbs_mom's files.
import { existsSync, readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { posix } from 'node:path'
import type { CgroupRoots } from '../host/cgroup.ts'
import { torqueCpuset } from './cgroups.ts'
import type { JobFacts } from './contract.ts'
import type { JobRecord } from './jobfile.ts'
import { execHostSlots, nodeShare, slotsShare, type NodeShare } from './nodes.ts'
import { parseRequest, type JobRequest } from './request.ts'

export interface JobContext extends JobFacts {
  /** The Resource_List, parsed. */
  request: JobRequest
  /** How many nodes the job has, this node's number and the job's share of it. */
  share: NodeShare
  /** The node file, once pbs_mom wrote it (the mother superior's). */
  nodeFile?: string
  /** The node's indices of the GPUs pbs_mom gave the job here. */
  gpus: number[]
  /** The CPUs of the cpuset TORQUE made for the job here (built with cgroups). */
  cpuset?: string
  /** Where qsub ran (PBS_O_WORKDIR) and the job's TMPDIR, as pbs_mom set them. */
  workDir?: string
  tmpDir?: string
}

/**
 * The job of a prologue: `facts` its arguments, `env` pbs_mom's environment for it (never
 * the job's); `node`: this host's name and cgroup roots (tests give their own).
 */
export function jobContext(facts: JobFacts, env: NodeJS.ProcessEnv, node: { host?: string; cgroups?: CgroupRoots } = {}): JobContext {
  const request = parseRequest(facts.resources)
  // A real mom may name the node file with a double slash (`aux//4.vm`).
  const nodeFile = env.PBS_NODEFILE && existsSync(env.PBS_NODEFILE) ? posix.normalize(env.PBS_NODEFILE) : undefined
  return {
    ...facts,
    request,
    share: nodeShare(request.nodes, env, nodeFile && readFileSync(nodeFile, 'utf8')),
    nodeFile,
    gpus: env.PBS_NODEFILE ? allocatedGpus(`${env.PBS_NODEFILE}gpu`, node.host ?? hostname()) : [],
    cpuset: torqueCpuset(facts.jobId, node.cgroups),
    workDir: env.PBS_O_WORKDIR,
    tmpDir: env.TMPDIR,
  }
}

/**
 * GPUs pbs_mom gave the job on `host` (short or full name), from its gpu file. pbs_mom
 * (built with NVIDIA support) writes it before the prologue: PBS_NODEFILE's path with `gpu`
 * appended, a line `<host>-gpu<index>` per GPU of the job (src/resmom/start_exec.c,
 * write_attr_to_file).
 */
export function allocatedGpus(gpuFile: string, host: string): number[] {
  let text: string
  try {
    text = readFileSync(gpuFile, 'utf8')
  } catch {
    return []
  }
  const names = new Set([host, host.split('.')[0]])
  const indices: number[] = []
  for (const line of text.split('\n').map(l => l.trim()).filter(Boolean)) {
    const m = /^(.+)-gpu(\d{1,4})$/.exec(line)
    if (m && (names.has(m[1]) || names.has(m[1].split('.')[0]))) indices.push(Number(m[2]))
  }
  return [...new Set(indices)].sort((a, b) => a - b)
}

/**
 * The job of a job shell or task, as root recorded it (its `.JB`). What the starter reads of
 * it beyond the record is parsed (or read) once, on first use: a native queue's job never
 * needs it, and what does not parse throws UsageError where it is used.
 */
export interface RunningJob extends JobRecord {
  /** The Resource_List. */
  request(): JobRequest
  /** The job's slots on each of its nodes, by node number, from its exec_host: undefined until the server ran it. */
  slots(): number[] | undefined
  /** Node `number`'s share of the job, from its exec_host. */
  shareOf(number: number): Pick<NodeShare, 'nodes' | 'ppnHere' | 'npTotal'>
  /** The CPUs of the cpuset TORQUE made for the job on this node (built with cgroups). */
  cpuset(): string | undefined
}

export function runningJob(record: JobRecord, cgroups?: CgroupRoots): RunningJob {
  const slots = once(() => (record.execHost ? execHostSlots(record.execHost) : undefined))
  return {
    ...record,
    request: once(() => parseRequest(record.resources)),
    slots,
    shareOf: number => slotsShare(slots() ?? [], number),
    cpuset: once(() => torqueCpuset(record.jobId, cgroups)),
  }
}

/** `fn`'s answer, or its error, from its first call on. */
function once<T>(fn: () => T): () => T {
  let outcome: { value: T } | { error: unknown } | undefined
  return () => {
    if (!outcome) {
      try {
        outcome = { value: fn() }
      } catch (error) {
        outcome = { error }
      }
    }
    if ('error' in outcome) throw outcome.error
    return outcome.value
  }
}
