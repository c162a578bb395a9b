// The job's output at disk speed: the job shell writes its .OU/.ER itself. On the mother
// superior the prologue's stdout and stderr are the job's .OU/.ER as pbs_mom opened them
// (spool files, or the final ones with $spool_as_final_name or -k); the prologue mounts
// those very files into the container, checked by device and inode, and the starter has
// the job shell send its output there first thing. No process copies it, none can lose it
// (a starter that dies, an engine restarted with live-restore), and with -j oe (one file)
// stdout and stderr keep their order. Interactive jobs keep their terminal.
import { closeSync, constants as fsConstants, fstatSync, openSync, readlinkSync, readSync } from 'node:fs'
import { sameObject, shownInContainer } from '../host/mounts.ts'
import { OUTPUT_TARGETS, type JobOutput, type OutputFile } from './container.ts'

/** The job's output files, as this process's fds 1 and 2 (the prologue's), if they are the owner's regular files. */
export function outputFiles(ownerUid: number, fds = { stdout: 1, stderr: 2 }): JobOutput | undefined {
  const file = (fd: number): OutputFile | undefined => {
    try {
      const stat = fstatSync(fd)
      const path = readlinkSync(`/proc/self/fd/${fd}`)
      if (!stat.isFile() || stat.uid !== ownerUid || stat.nlink < 1 || !path.startsWith('/') || path.endsWith(' (deleted)')) return undefined
      return { path, dev: stat.dev, ino: stat.ino }
    } catch {
      return undefined
    }
  }
  const stdout = file(fds.stdout)
  const stderr = file(fds.stderr)
  if (!stdout || !stderr) return undefined
  return sameObject(stdout, stderr) ? { stdout } : { stdout, stderr }
}

/**
 * What the job shell runs first to write its output itself: only when the starter's own
 * stdout/stderr are the files mounted in the container (else the stream stays).
 */
export function redirection(pid: number, starter = { stdout: 1, stderr: 2 }, proc = '/proc'): string | undefined {
  let out, err
  try {
    [out, err] = [fstatSync(starter.stdout), fstatSync(starter.stderr)]
  } catch {
    return undefined // a starter without its output: the stream stays
  }
  if (!sameObject(shownInContainer(pid, OUTPUT_TARGETS.stdout, proc), out)) return undefined
  if (sameObject(out, err)) return `exec >>${OUTPUT_TARGETS.stdout} 2>&1`
  return sameObject(shownInContainer(pid, OUTPUT_TARGETS.stderr, proc), err) ? `exec >>${OUTPUT_TARGETS.stdout} 2>>${OUTPUT_TARGETS.stderr}` : undefined
}

/**
 * Whether what is written to `fd` next starts a line: false only when `fd` is a regular
 * file whose last byte is not a newline (a job's last line without one). Read through
 * /proc/self/fd, the very file open there (pbs_mom opens .OU for writing only).
 */
export function atLineStart(fd = 1): boolean {
  let file: number | undefined
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile() || stat.size === 0) return true
    file = openSync(`/proc/self/fd/${fd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)
    // The same object, not one swapped in at its path meanwhile.
    if (!sameObject(fstatSync(file), stat)) return true
    const last = Buffer.alloc(1)
    return readSync(file, last, 0, 1, fstatSync(file).size - 1) !== 1 || last[0] === 0x0a
  } catch {
    return true
  } finally {
    if (file !== undefined) closeSync(file)
  }
}
