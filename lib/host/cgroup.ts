// What a container's processes used, read straight from its cgroup files (cgroup v1 or
// v2): no stats call that waits a second for a second sample.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export interface CgroupUsage {
  version: 1 | 2
  /** `limitCpus`: the CPU-time quota in CPUs, if any; `cpuset`: the CPUs it may run on (e.g. 0-3). */
  cpu: { userSeconds: number; systemSeconds: number; totalSeconds: number; limitCpus?: number; cpuset?: string }
  /**
   * `peakBytes` is the kernel's: it counts the page cache of the job's file I/O (its output
   * included), which the kernel reclaims under pressure. `pageCacheBytes`: that cache still
   * charged at the end; `ownPeakBytes`: peak less it, the job's own memory at its peak as
   * far as can be told (the kernel keeps no peak without the cache).
   */
  memory: { currentBytes: number; peakBytes: number; limitBytes?: number; oomKills: number; pageCacheBytes?: number; ownPeakBytes?: number }
  io: { readBytes: number; writeBytes: number }
  pids: { peak?: number }
}

export interface CgroupRoots {
  /** procfs, to find the cgroup of a pid. */
  proc: string
  /** where cgroup hierarchies are mounted. */
  sys: string
}

const HOST: CgroupRoots = { proc: '/proc', sys: '/sys/fs/cgroup' }
/** Kernel USER_HZ: units of cpuacct.stat. */
const USER_HZ = 100

/** The directory of `controller` for the cgroup of `pid`. */
function locate(pid: number, roots: CgroupRoots): { version: 1 | 2; dir: (controller: string) => string } {
  const lines = readFileSync(join(roots.proc, String(pid), 'cgroup'), 'utf8').trim().split('\n')
  if (existsSync(join(roots.sys, 'cgroup.controllers'))) {
    const path = lines.find(l => l.startsWith('0::'))!.slice(3)
    return { version: 2, dir: () => join(roots.sys, path) }
  }
  const byController = new Map<string, string>()
  for (const line of lines) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? []
    for (const c of controllers?.split(',') ?? []) if (c) byController.set(c, path)
  }
  return {
    version: 1,
    dir: controller => join(roots.sys, controller, byController.get(controller) ?? '/'),
  }
}

export function readUsage(pid: number, roots: CgroupRoots = HOST): CgroupUsage {
  const { version, dir } = locate(pid, roots)
  const read = (controller: string, file: string) => readFileSync(join(dir(controller), file), 'utf8')
  const optional = (controller: string, file: string) => {
    try {
      return read(controller, file)
    } catch {
      return undefined
    }
  }
  const pidsPeak = optional('pids', 'pids.peak')
  const pids = { peak: pidsPeak === undefined ? undefined : Number(pidsPeak) }
  const cpuset = optional('cpuset', version === 2 ? 'cpuset.cpus.effective' : 'cpuset.cpus')?.trim()
  if (version === 2) {
    const cpu = keyed(read('', 'cpu.stat'))
    const limit = read('', 'memory.max').trim()
    const [quota, period] = optional('', 'cpu.max')?.trim().split(/\s+/) ?? []
    const peakBytes = Number(optional('', 'memory.peak') ?? read('', 'memory.current'))
    return {
      version,
      cpu: { userSeconds: cpu.user_usec / 1e6, systemSeconds: cpu.system_usec / 1e6, totalSeconds: cpu.usage_usec / 1e6, ...given(quota, period, cpuset) },
      memory: {
        currentBytes: Number(read('', 'memory.current')),
        peakBytes,
        limitBytes: limit === 'max' ? undefined : Number(limit),
        oomKills: keyed(read('', 'memory.events')).oom_kill ?? 0,
        ...pageCache(optional('', 'memory.stat'), '', peakBytes),
      },
      io: ioV2(optional('', 'io.stat') ?? ''),
      pids,
    }
  }
  const ticks = keyed(read('cpuacct', 'cpuacct.stat'))
  const limit = Number(read('memory', 'memory.limit_in_bytes'))
  const peakBytes = Number(read('memory', 'memory.max_usage_in_bytes'))
  return {
    version,
    cpu: {
      userSeconds: ticks.user / USER_HZ,
      systemSeconds: ticks.system / USER_HZ,
      totalSeconds: Number(read('cpuacct', 'cpuacct.usage')) / 1e9,
      ...given(optional('cpu', 'cpu.cfs_quota_us')?.trim(), optional('cpu', 'cpu.cfs_period_us')?.trim(), cpuset),
    },
    memory: {
      currentBytes: Number(read('memory', 'memory.usage_in_bytes')),
      peakBytes,
      // v1 says "no limit" with a huge page-aligned number.
      limitBytes: limit >= 2 ** 62 ? undefined : limit,
      oomKills: keyed(read('memory', 'memory.oom_control')).oom_kill ?? 0,
      // Hierarchical counts: the job's processes may sit in cgroups below the container's.
      ...pageCache(optional('memory', 'memory.stat'), 'total_', peakBytes),
    },
    io: ioV1(optional('blkio', 'blkio.throttle.io_service_bytes') ?? ''),
    pids,
  }
}

/** OOM kills in the cgroup of `pid` so far; 0 when it cannot be told. */
export function oomKills(pid: number, roots: CgroupRoots = HOST): number {
  try {
    const { version, dir } = locate(pid, roots)
    const file = version === 2 ? join(dir(''), 'memory.events') : join(dir('memory'), 'memory.oom_control')
    return keyed(readFileSync(file, 'utf8')).oom_kill ?? 0
  } catch {
    return 0
  }
}

/** The processes in the cgroup of `pid` (on v1, its pids controller's), `pid` among them. */
export function cgroupProcs(pid: number, roots: CgroupRoots = HOST): number[] {
  const { version, dir } = locate(pid, roots)
  return readFileSync(join(dir(version === 2 ? '' : 'pids'), 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number)
}

/** The CPUs a job was given: its quota (v1 -1, v2 max: none) and its cpuset, where the cgroup says. */
function given(quota: string | undefined, period: string | undefined, cpuset: string | undefined): Pick<CgroupUsage['cpu'], 'limitCpus' | 'cpuset'> {
  const limitCpus = quota && period && /^\d+$/.test(quota) && Number(period) > 0 ? Number(quota) / Number(period) : undefined
  return { ...(limitCpus ? { limitCpus } : {}), ...(cpuset ? { cpuset } : {}) }
}

/**
 * The page cache (file LRU: shmem and tmpfs, which the job cannot give back, are not in it)
 * from memory.stat, v1 (`total_` keys) or v2, and the peak less it.
 */
function pageCache(stat: string | undefined, prefix: string, peakBytes: number): Pick<CgroupUsage['memory'], 'pageCacheBytes' | 'ownPeakBytes'> {
  const values = keyed(stat ?? '')
  const [active, inactive] = [values[`${prefix}active_file`], values[`${prefix}inactive_file`]]
  if (active === undefined || inactive === undefined) return {}
  const pageCacheBytes = active + inactive
  return { pageCacheBytes, ownPeakBytes: Math.max(0, peakBytes - pageCacheBytes) }
}

/** "key value" lines -> record of numbers. */
function keyed(text: string): Record<string, number> {
  const result: Record<string, number> = {}
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/)
    if (key && value !== undefined) result[key] = Number(value)
  }
  return result
}

/** v1 blkio: "8:0 Read 4096" per device, and a "Total" line. */
function ioV1(text: string): CgroupUsage['io'] {
  let readBytes = 0
  let writeBytes = 0
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/)
    if (!device || device === 'Total') continue
    if (op === 'Read') readBytes += Number(value)
    if (op === 'Write') writeBytes += Number(value)
  }
  return { readBytes, writeBytes }
}

/** v2 io.stat: "8:0 rbytes=4096 wbytes=0 rios=1 ..." per device. */
function ioV2(text: string): CgroupUsage['io'] {
  let readBytes = 0
  let writeBytes = 0
  for (const m of text.matchAll(/\brbytes=(\d+)|\bwbytes=(\d+)/g)) {
    readBytes += Number(m[1] ?? 0)
    writeBytes += Number(m[2] ?? 0)
  }
  return { readBytes, writeBytes }
}
