// What pbs_mom confines a job with on its own: the rlimits it sets on the job starter and,
// built with cgroups, the job's cgroups.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDuration, parseSize } from '../lib/torque/contract.ts'

/** An rlimit as Python's resource module names it, soft and hard (-1: unlimited). */
export type Rlimit = [name: string, soft: number, hard: number]

/**
 * The rlimits pbs_mom sets on the starter (linux/mom_mach.c, mom_set_limits). Without
 * CAP_SYS_RESOURCE (some sandboxes), only soft limits: the hooks could not lift hard ones,
 * which pbs_mom's root can.
 */
export function momLimits(resources: Map<string, string>): Rlimit[] {
  const hard = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))
  const mayRaise = hard ? (BigInt(`0x${hard[1]}`) >> 24n) & 1n : 0n
  const limit = (name: string, v: number): Rlimit => [name, v, mayRaise ? v : -1]
  const size = (name: string) => {
    try {
      return resources.has(name) ? parseSize(resources.get(name)!) : undefined
    } catch {
      return undefined // a size cbatch refuses (mem=0b): the prologue says so, the starter never runs
    }
  }
  const oneNode = !/^([2-9]|\d\d+)|\+/.test(resources.get('nodes') ?? '1')
  const memory = size('pmem') ?? (oneNode ? size('mem') : undefined)
  const virtual = size('pvmem') ?? size('vmem')
  return [
    ...(resources.has('pcput') ? [limit('RLIMIT_CPU', parseDuration(resources.get('pcput')!))] : []),
    ...(resources.has('file') ? [limit('RLIMIT_FSIZE', size('file')!)] : []),
    ...(memory !== undefined ? [limit('RLIMIT_DATA', memory), limit('RLIMIT_RSS', memory)] : []),
    ...(virtual !== undefined ? [limit('RLIMIT_AS', virtual)] : []),
  ]
}

/** The controllers a TORQUE built with cgroups makes for each job, and removes after it. */
const MOM_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices']

export type JobCgroups = ReturnType<typeof makeJobCgroups>

/** The job's cgroups as pbs_mom makes them (contract: "TORQUE built with cgroups"). */
export function makeJobCgroups(jobId: string, resources: Map<string, string>, { cpus }: { cpus: string }) {
  const sys = '/sys/fs/cgroup'
  const dirOf = (controller: string) => join(sys, controller, 'torque', jobId)
  for (const controller of MOM_CONTROLLERS) {
    mkdirSync(dirOf(controller), { recursive: true })
    if (controller === 'cpuset') {
      // A new cpuset has no CPUs or memory nodes until given some, level by level.
      const mems = readFileSync(join(sys, 'cpuset', 'cpuset.mems'), 'utf8').trim()
      for (const dir of [join(sys, 'cpuset', 'torque'), dirOf('cpuset')]) {
        writeFileSync(join(dir, 'cpuset.cpus'), dir === dirOf('cpuset') ? cpus : readFileSync(join(sys, 'cpuset', 'cpuset.cpus'), 'utf8').trim())
        writeFileSync(join(dir, 'cpuset.mems'), mems)
      }
    }
  }
  const mem = resources.get('mem')
  if (mem) writeFileSync(join(dirOf('memory'), 'memory.limit_in_bytes'), String(parseSize(mem)))
  const own = readFileSync('/proc/self/cgroup', 'utf8')
  const ownPath = (controller: string) => new RegExp(`^\\d+:(?:[^:]*,)?${controller}(?:,[^:]*)?:(.*)$`, 'm').exec(own)?.[1] ?? '/'
  const move = (dir: (controller: string) => string) => {
    for (const controller of MOM_CONTROLLERS) writeFileSync(join(dir(controller), 'cgroup.procs'), String(process.pid))
  }
  return {
    /** Spawns inside the job's cgroups, as pbs_mom does before it execs: the child starts there. */
    spawn<T>(start: () => T): T {
      move(dirOf)
      try {
        return start()
      } finally {
        move(controller => join(sys, controller, ownPath(controller)))
      }
    },
    /** pbs_mom's removal: its own controllers, retried a while; what is left afterwards. */
    async remove(): Promise<string[]> {
      for (let attempt = 0; attempt < 10; attempt++) {
        const left = MOM_CONTROLLERS.filter(c => existsSync(dirOf(c)))
        for (const c of left) try { rmdirSync(dirOf(c)) } catch { /* busy: retried */ }
        if (!MOM_CONTROLLERS.some(c => existsSync(dirOf(c)))) break
        await new Promise(r => setTimeout(r, 200))
      }
      return readdirSync(sys).map(dirOf).filter(existsSync)
    },
  }
}
