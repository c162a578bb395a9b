// What a job used, as one JSON line per job in an append-only file, and as one line
// for the job owner.
import type { CgroupUsage } from '../host/cgroup.ts'
import { formatBytes, formatDuration } from '../format.ts'
import { appendToRootFile } from '../host/trusted.ts'

export interface AccountingRecord {
  time: string
  jobId: string
  user: string
  queue: string
  node: string
  /** PBS_NODENUM of the node: 0 the mother superior, 1, 2, ... its sisters (one line each). */
  nodeNumber: number
  container: string
  image: string
  imageDigest?: string
  /** The OCI runtime that ran the job's container, by the engine's name for it (runc, runsc...). */
  runtime: string
  /** The job's exit status as pbs_mom reports it; sisters are not told it. */
  exitStatus?: number
  wallSeconds: number
  /** Who signed the image, as the prologue verified it (a queue with signatures.required). */
  signer?: string
  /** The node's indices of the GPUs the job was given. */
  gpus?: number[]
  /** True when the kernel killed a process of the job for exceeding its memory. */
  oomKilled: boolean
  /** Absent when the container had already stopped and its cgroup was gone. */
  usage?: CgroupUsage
}

/**
 * Appends one line. A single write(2) on an O_APPEND descriptor: lines of epilogues
 * writing at once never interleave, and earlier lines are never touched.
 */
export function appendRecord(file: string, record: AccountingRecord): void {
  appendToRootFile(file, `${JSON.stringify(record)}\n`, 'accounting file', { sync: true })
}

/** `cbatch: cpu 12.3 s, cpus 2 (0-1), peak mem 512 MiB incl. page cache (200 MiB at end), wall 00:01:02, exit 0` */
export function summaryLine(record: AccountingRecord): string {
  const parts = []
  if (record.usage) {
    const { cpu, memory } = record.usage
    parts.push(`cpu ${cpu.totalSeconds.toFixed(1)} s`)
    const cpus = cpu.limitCpus ?? (cpu.cpuset === undefined ? undefined : cpusIn(cpu.cpuset))
    if (cpus !== undefined) parts.push(`cpus ${Number(cpus.toFixed(2))}${cpu.cpuset === undefined ? '' : ` (${cpu.cpuset})`}`)
    // The kernel's peak counts the page cache of the job's I/O: said, so a big writer is not misread.
    const cache = memory.pageCacheBytes === undefined ? '' : ` incl. page cache (${formatBytes(memory.pageCacheBytes)} at end)`
    parts.push(`peak mem ${formatBytes(memory.peakBytes)}${cache}`)
  }
  if (record.gpus?.length) parts.push(`gpus ${record.gpus.join(',')}`)
  parts.push(`wall ${formatDuration(record.wallSeconds)}`)
  if (record.exitStatus !== undefined) parts.push(`exit ${record.exitStatus}`)
  if (record.oomKilled) {
    const limit = record.usage?.memory.limitBytes
    parts.push(`killed: out of memory${limit ? ` (limit ${formatBytes(limit)})` : ''}`)
  }
  return `cbatch: ${parts.join(', ')}`
}

/** How many CPUs a cpuset list names: `0-3,8` is 5. */
function cpusIn(list: string): number | undefined {
  let count = 0
  for (const range of list.split(',')) {
    const [from, to = from] = range.split('-').map(Number)
    if (!Number.isInteger(from) || !Number.isInteger(to) || to < from) return undefined
    count += to - from + 1
  }
  return count
}
