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
  /** The job's exit status as pbs_mom reports it; sisters are not told it. */
  exitStatus?: number
  wallSeconds: number
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

/** `cbatch: cpu 12.3 s, peak mem 512 MiB, wall 00:01:02, exit 0` */
export function summaryLine(record: AccountingRecord): string {
  const parts = []
  if (record.usage) {
    parts.push(`cpu ${record.usage.cpu.totalSeconds.toFixed(1)} s`, `peak mem ${formatBytes(record.usage.memory.peakBytes)}`)
  }
  parts.push(`wall ${formatDuration(record.wallSeconds)}`)
  if (record.exitStatus !== undefined) parts.push(`exit ${record.exitStatus}`)
  if (record.oomKilled) {
    const limit = record.usage?.memory.limitBytes
    parts.push(`killed: out of memory${limit ? ` (limit ${formatBytes(limit)})` : ''}`)
  }
  return `cbatch: ${parts.join(', ')}`
}
