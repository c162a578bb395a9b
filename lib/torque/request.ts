// The job's resource request: pbs_mom's Resource_List (`nodes=1:ppn=2,mem=4gb,...`) as
// numbers, parsed once per hook (torque/job.ts) and judged by policy/resources.ts.
import { UsageError } from '../errors.ts'
import { parseCount, parseDuration, parseResourceList, parseSize } from './contract.ts'
import { parseNodes, type NodeSpec } from './nodes.ts'

export interface JobRequest {
  nodes: NodeSpec[]
  procs?: number
  ncpus?: number
  /** bytes */
  mem?: number
  pmem?: number
  vmem?: number
  pvmem?: number
  /** bytes: largest file a process may write */
  file?: number
  /** seconds */
  walltime?: number
  /** seconds of CPU, the job's total (enforced by polling, as pbs_mom does) */
  cput?: number
  /** seconds of CPU per process (RLIMIT_CPU) */
  pcput?: number
}

export function parseRequest(resourceList: string): JobRequest {
  const list = parseResourceList(resourceList)
  const count = (name: string) => (list.has(name) ? parseCount(list.get(name)!, name) : undefined)
  const time = (name: string) => (list.has(name) ? parseDuration(list.get(name)!) : undefined)
  const size = (name: string) => {
    const v = list.get(name)
    if (v === undefined) return undefined
    try {
      return parseSize(v)
    } catch (err) {
      throw new UsageError(`${name}=${v}: ${(err as Error).message}`)
    }
  }
  return {
    nodes: list.has('nodes') ? parseNodes(list.get('nodes')!) : [],
    procs: count('procs'),
    ncpus: count('ncpus'),
    mem: size('mem'),
    pmem: size('pmem'),
    vmem: size('vmem'),
    pvmem: size('pvmem'),
    file: size('file'),
    walltime: time('walltime'),
    cput: time('cput'),
    pcput: time('pcput'),
  }
}
