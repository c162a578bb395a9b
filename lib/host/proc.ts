// Host processes as /proc shows them: sessions, parents, cgroups; and signalling a session
// as pbs_mom does, confined to one container when asked.
import { readdirSync, readFileSync } from 'node:fs'

/**
 * Sends `signal` to every process whose session id is `sid` (host pids). With `container`
 * (the names of a container's cgroup: its engine's cgroupNames), only to processes in that
 * container's cgroup: neither a wrong answer from the engine nor a pid reused since makes
 * root signal anything outside the job.
 */
export function signalSession(sid: number, signal: NodeJS.Signals, options: { container?: string[]; proc?: string } = {}): number {
  const proc = options.proc ?? '/proc'
  if (!(sid > 1)) return 0
  let sent = 0
  for (const entry of readdirSync(proc)) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (sessionOf(readFileSync(`${proc}/${entry}/stat`, 'utf8')) !== sid) continue
      if (options.container && !inContainer(readFileSync(`${proc}/${entry}/cgroup`, 'utf8'), options.container)) continue
      process.kill(Number(entry), signal)
      sent++
    } catch {
      // The process ended meanwhile.
    }
  }
  return sent
}

/**
 * Kills a container's processes from the host, without its engine: SIGKILL to its init (host
 * pid `pid`) ends every process of its pid namespace, the kernel ending the others before
 * init becomes a zombie. Only once /proc shows `pid` in the container's cgroup (`cgroupNames`:
 * its engine's), so a pid reused since is never signalled. True when init has exited (gone,
 * a zombie, or its pid reused) within `timeoutMs`; false when `pid` is not the container's.
 */
export async function killContainerInit(pid: number, cgroupNames: string[], { proc = '/proc', timeoutMs = 2000 } = {}): Promise<boolean> {
  let started: number
  try {
    if (!(pid > 1) || !cgroupNames.length || !inContainer(readFileSync(`${proc}/${pid}/cgroup`, 'utf8'), cgroupNames)) return false
    started = startTimeOf(pid, proc)
    process.kill(pid, 'SIGKILL')
  } catch {
    return false // not there (any more): whether the container still runs is not known here
  }
  const exited = () => {
    try {
      const stat = readFileSync(`${proc}/${pid}/stat`, 'utf8')
      return statFields(stat)[0] === 'Z' || Number(statFields(stat)[19]) !== started
    } catch {
      return true
    }
  }
  for (const until = Date.now() + timeoutMs; !exited(); await new Promise(r => setTimeout(r, 5))) {
    if (Date.now() > until) return false
  }
  return true
}

/** Whether /proc/<pid>/cgroup places the process in a cgroup of one of these names (v1 or v2, under any parent). */
export function inContainer(cgroups: string, cgroupNames: string[]): boolean {
  return cgroups.split('\n').some(line => {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1)
    return path.split('/').some(part => cgroupNames.includes(part))
  })
}

/** Session id from /proc/<pid>/stat (field 6; the command name may hold spaces and parens). */
export function sessionOf(stat: string): number {
  return Number(statFields(stat)[3])
}

/** Parent pid from /proc/<pid>/stat (field 4). */
export function parentOf(stat: string): number {
  return Number(statFields(stat)[1])
}

/** When a process started, in clock ticks after boot (/proc/<pid>/stat field 22): a pid and this name one process. */
export function startTimeOf(pid: number, proc = '/proc'): number {
  return Number(statFields(readFileSync(`${proc}/${pid}/stat`, 'utf8'))[19])
}

/** The fields of /proc/<pid>/stat after the command name, from field 3 (state) on. */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}
