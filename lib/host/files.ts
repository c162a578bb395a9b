// Which host process shows a container's files as its processes see them: where root
// proves its mounts (host/mounts.ts proveBinds) and finds the job's output files in it.
// Under runc that is the container's init. gVisor (runsc) runs a container in a sandbox, a
// kernel in user space: the init the engine reports is that sandbox, whose own mount table
// holds none of the container's files. Its gofer, root's process in the container's cgroup,
// serves them to it from its own mount namespace, where the container's root and binds are
// mounted as the engine asked (read-only binds are enforced by the sandbox, not there).
import { readFileSync } from 'node:fs'
import { UnsafePathError } from '../errors.ts'
import { cgroupProcs, type CgroupRoots } from './cgroup.ts'

export interface ContainerFiles {
  /** The host pid whose root and mount table are the container's. */
  pid: number
  /** Whether that table shows read-only binds as read-only (gVisor's gofer mounts them read-write, its sandbox enforces them). */
  readOnlyShown: boolean
}

/** Where the files of the container of init `pid` are seen on the host. */
export function containerFiles(pid: number, roots: CgroupRoots = { proc: '/proc', sys: '/sys/fs/cgroup' }): ContainerFiles {
  if (programOf(pid, roots.proc) !== 'runsc-sandbox') return { pid, readOnlyShown: true }
  // Only runsc makes a root process in the sandbox's cgroup: the job's code runs as the
  // sandbox's unprivileged stubs, and cannot name a process root's.
  const gofers = cgroupProcs(pid, roots).filter(p => programOf(p, roots.proc) === 'runsc-gofer' && ownerOf(p, roots.proc) === 0)
  if (gofers.length !== 1) throw new UnsafePathError(`cannot tell the gVisor gofer of the job's container (${gofers.length} found)`)
  return { pid: gofers[0], readOnlyShown: false }
}

/** argv[0] of a host process; '' when it is gone. */
function programOf(pid: number, proc: string): string {
  try {
    return readFileSync(`${proc}/${pid}/cmdline`, 'utf8').split('\0')[0]
  } catch {
    return ''
  }
}

/** Real uid of a host process; -1 when it is gone. */
function ownerOf(pid: number, proc: string): number {
  try {
    return Number(/^Uid:\s*(\d+)/m.exec(readFileSync(`${proc}/${pid}/status`, 'utf8'))?.[1] ?? -1)
  } catch {
    return -1
  }
}
