// A job's cgroup made by a TORQUE built with cgroups (docs/torque-contract.md,
// "TORQUE built with cgroups"): /sys/fs/cgroup/<controller>/torque/<jobid>, cgroup v1. With
// `cgroupParent: torque` the job's container lives below it, so TORQUE counts and confines
// it; what that leaves to cbatch is here.
import { readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { CgroupRoots } from '../host/cgroup.ts'

const HOST: CgroupRoots = { proc: '/proc', sys: '/sys/fs/cgroup' }

/** The controllers pbs_mom makes and removes itself for a job. */
const TORQUES_OWN = new Set(['cpu', 'cpuacct', 'cpu,cpuacct', 'cpuacct,cpu', 'cpuset', 'memory', 'devices'])

/** The job's directory under a controller; undefined for ids that are no plain name. */
function jobDir(roots: CgroupRoots, controller: string, jobId: string): string | undefined {
  return /^[^/\0]+$/.test(jobId) && jobId !== '.' && jobId !== '..' ? join(roots.sys, controller, 'torque', jobId) : undefined
}

/** The CPUs of the cpuset TORQUE made for a job, if any. */
export function torqueCpuset(jobId: string, roots: CgroupRoots = HOST): string | undefined {
  for (const file of [join(roots.sys, 'cpuset/torque', jobId, 'cpuset.cpus'), join(roots.sys, 'torque', jobId, 'cpuset.cpus.effective')]) {
    try {
      const cpus = readFileSync(file, 'utf8').trim()
      if (cpus) return cpus
    } catch {
      // not this layout
    }
  }
  return undefined
}

/**
 * Puts this process back into the job's memory cgroup, which the starter's wrapper left
 * (hooks/wrapper.ts), so a job it runs natively is confined as TORQUE meant.
 */
export function rejoinJobMemoryCgroup(memcg: string | undefined, roots: CgroupRoots = HOST): void {
  if (!memcg || !/^\/torque\/[^/\0]+$/.test(memcg) || /\/\.\.?$/.test(memcg)) return
  writeFileSync(join(roots.sys, 'memory', memcg, 'cgroup.procs'), String(process.pid))
}

/**
 * Moves this process out of the job's cgroups (a TORQUE built with cgroups starts the
 * prologue in them) to the root of each hierarchy: for what outlives the job, the detached
 * image pull, which would otherwise count against the job's limits and keep pbs_mom from
 * removing its cgroups. Best effort.
 */
export function leaveJobCgroups(roots: CgroupRoots = HOST): void {
  for (const line of readFileSync(join(roots.proc, 'self/cgroup'), 'utf8').split('\n')) {
    const m = /^\d+:([^:]*):\/torque\/[^\0]*$/.exec(line)
    if (!m) continue
    try {
      writeFileSync(join(roots.sys, m[1].replace(/^name=/, ''), 'cgroup.procs'), String(process.pid))
    } catch {
      // a hierarchy not mounted where expected: the pull still runs
    }
  }
}

/**
 * Removes what the engine made under the job's cgroup in controllers pbs_mom does not
 * clean (pids, blkio, freezer, systemd, …), once the container is gone. Returns what it removed.
 */
export function removeEngineLeftovers(jobId: string, roots: CgroupRoots = HOST): string[] {
  const removed: string[] = []
  for (const controller of readdirSync(roots.sys)) {
    const dir = jobDir(roots, controller, jobId)
    if (!dir || TORQUES_OWN.has(controller) || !isDirectory(dir)) continue
    try {
      rmdirSync(dir) // only empty: a live container's directory stays
      removed.push(dir)
    } catch {
      // not empty, or gone meanwhile
    }
  }
  return removed
}

/**
 * Kills every process in the job's container cgroups (below the job's memory cgroup), when
 * the engine cannot remove the container: one that outlives its job would keep pbs_mom from
 * removing the job's cgroup, and pbs_mom never kills it. Returns how many it signalled.
 * With `onlyContainer` (the names of one container's cgroup: its engine's cgroupNames), only
 * that container's cgroup is touched.
 */
export function killContainerProcesses(jobId: string, roots: CgroupRoots = HOST, onlyContainer?: string[]): number {
  const dir = jobDir(roots, 'memory', jobId)
  if (!dir || !isDirectory(dir)) return 0
  let killed = 0
  for (const sub of readdirSync(dir, { withFileTypes: true })) {
    if (!sub.isDirectory()) continue
    if (onlyContainer !== undefined && !onlyContainer.includes(sub.name)) continue
    for (const pid of readFileSync(join(dir, sub.name, 'cgroup.procs'), 'utf8').split('\n').filter(p => /^\d+$/.test(p))) {
      try {
        process.kill(Number(pid), 'SIGKILL')
        killed++
      } catch {
        // ended meanwhile
      }
    }
  }
  return killed
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}
