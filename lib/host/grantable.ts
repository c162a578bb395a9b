// The most open files and processes the engine can give a container's processes on this
// node. The runtime sets a container's rlimits from the engine daemon's process tree: with
// CAP_SYS_RESOURCE (root on a compute node) any value up to the kernel's bound; without it
// (root in some containers and VMs) no more than the daemon's own hard limits, and Podman's
// service lowers its own nproc. Asking for more fails the container's start.
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs'
import { join } from 'node:path'

/** Upper bounds of a container's rlimits on this node; absent: none known. */
export interface RlimitCeilings {
  nofile?: number
  nproc?: number
}

const CAP_SYS_RESOURCE = 24

/**
 * What the engine listening on `socket` can grant. Without CAP_SYS_RESOURCE here, the hard
 * limits of the process that holds the socket (found through /proc: one scan of the
 * node's file descriptors, tens of ms); if none is found (the engine is down, another
 * namespace), this process's own, the daemon being root on the same node too.
 */
export function grantableLimits(socket: string, proc = '/proc'): RlimitCeilings {
  const daemon = mayRaise('self', proc) ? undefined : listenerOf(socket, proc)
  if (mayRaise(daemon ?? 'self', proc)) {
    return { nofile: Number(readFileSync(join(proc, 'sys/fs/nr_open'), 'utf8')) }
  }
  return hardLimits(readFileSync(join(proc, daemon ?? 'self', 'limits'), 'utf8'))
}

/** Whether the process may raise hard rlimits (CAP_SYS_RESOURCE in its effective set). */
function mayRaise(pid: string, proc: string): boolean {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(join(proc, pid, 'status'), 'utf8'))?.[1]
    return hex !== undefined && (BigInt(`0x${hex}`) >> BigInt(CAP_SYS_RESOURCE) & 1n) === 1n
  } catch {
    return false // gone meanwhile
  }
}

/** The hard nofile and nproc limits of /proc/<pid>/limits text ("unlimited": no bound). */
export function hardLimits(text: string): RlimitCeilings {
  const hard = (label: string) => {
    const value = new RegExp(`^${label}\\s+\\S+\\s+(\\S+)`, 'm').exec(text)?.[1]
    return value === undefined || value === 'unlimited' ? undefined : Number(value)
  }
  const nofile = hard('Max open files')
  const nproc = hard('Max processes')
  return { ...(nofile === undefined ? {} : { nofile }), ...(nproc === undefined ? {} : { nproc }) }
}

/** The pid of the process holding the listening unix socket at `socket`, if any. */
export function listenerOf(socket: string, proc = '/proc'): string | undefined {
  const real = realOrSelf(socket)
  // Num RefCount Protocol Flags Type St Inode Path; listening: flags __SO_ACCEPTCON (00010000).
  const inode = readFileSync(join(proc, 'net/unix'), 'utf8').split('\n').map(line => line.trim().split(/\s+/))
    .find(f => f[3] === '00010000' && f[7] !== undefined && (f[7] === socket || realOrSelf(f[7]) === real))?.[6]
  if (!inode) return undefined
  const target = `socket:[${inode}]`
  for (const pid of readdirSync(proc)) {
    if (!/^\d+$/.test(pid)) continue
    let fds: string[]
    try {
      fds = readdirSync(join(proc, pid, 'fd'))
    } catch {
      continue // gone meanwhile
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(join(proc, pid, 'fd', fd)) === target) return pid
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined
}

function realOrSelf(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}
