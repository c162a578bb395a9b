// Files root relies on: the config, the engine socket, the node log and the accounting
// file. Root trusts such a path only if no one but root can change what it names, and
// appends only to files that are root's own, never through a link (docs/security.md).
import { chmodSync, closeSync, constants, fsyncSync, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { basename, dirname, join, posix } from 'node:path'
import { UnsafePathError } from '../errors.ts'

const GROUP_OR_OTHER_WRITE = 0o022
const STICKY = 0o1000

/**
 * Throws UnsafePathError unless every component of `path` is owned by root and no
 * directory on the way can be changed by anyone else: not writable by group or others,
 * or sticky (then others cannot rename or remove root's entries in it). A link on the
 * way is followed only if it is root's, and its target is judged the same way.
 * `strict`: the last component, if a directory, may not be sticky-and-writable either.
 * `mayBeMissing`: a last component that does not exist passes, if its directory is root's
 * alone (not even sticky-writable: no one else may create it meanwhile).
 */
export function assertRootControlled(path: string, what: string, options: WalkOptions = {}): void {
  if (!path.startsWith('/')) throw new UnsafePathError(`${what} ${path} is not an absolute path`)
  walk(path, what, options, 0)
}

interface WalkOptions {
  strict?: boolean
  mayBeMissing?: boolean
}

function walk(path: string, what: string, options: WalkOptions, depth: number): void {
  if (depth > 16) throw new UnsafePathError(`${what} ${path}: too many links`)
  const parts = posix.normalize(path).split('/').filter(Boolean)
  let here = '/'
  checkEntry(here, what, path, false, false)
  for (const [i, part] of parts.entries()) {
    const next = posix.join(here, part)
    const last = i === parts.length - 1
    const stat = checkEntry(next, what, path, !!options.strict && last, !!options.mayBeMissing && last)
    if (!stat) {
      checkEntry(here, what, path, true, false)
      return
    }
    if (stat.isSymbolicLink()) {
      const target = posix.resolve(here, readlinkSync(next))
      walk(posix.join(target, ...parts.slice(i + 1)), what, options, depth + 1)
      return
    }
    here = next
  }
}

function checkEntry(entry: string, what: string, path: string, strict: boolean, mayBeMissing: boolean) {
  let stat
  try {
    stat = lstatSync(entry)
  } catch (err) {
    if (mayBeMissing && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UnsafePathError(`${what} ${path} cannot be used`, `${entry}: ${(err as NodeJS.ErrnoException).code}`)
  }
  if (stat.uid !== 0) throw new UnsafePathError(`${what} ${path} is not safe: ${entry} is not owned by root`)
  if (stat.isDirectory() && (stat.mode & GROUP_OR_OTHER_WRITE) && (strict || !(stat.mode & STICKY))) {
    throw new UnsafePathError(`${what} ${path} is not safe: others may write to ${entry}`)
  }
  return stat
}

/**
 * Appends `text` to `file` in one write(2), creating it (and its directory) as root's.
 * Never through a link, never to a file that is not root's own or has other names.
 */
export function appendToRootFile(file: string, text: string, what: string, options: { sync?: boolean } = {}): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
  assertRootControlled(dirname(file), `directory of the ${what}`)
  const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640)
  try {
    const stat = fstatSync(fd)
    if (!stat.isFile() || stat.uid !== 0 || stat.nlink !== 1) {
      throw new UnsafePathError(`${what} ${file} is not safe: not a regular file of root's with one name`)
    }
    writeSync(fd, text)
    if (options.sync) fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

/**
 * Replaces `file` whole with `content`, mode exactly `mode` (whatever the umask: pbs_mom
 * runs hooks with 0077): written to a temporary of its own beside it, never through
 * anything already there, then renamed over it. Readers and concurrent writers only ever
 * see whole files. For directories only root may write to.
 */
export function replaceFile(file: string, content: string | Uint8Array, mode: number): void {
  const temporary = join(dirname(file), `.${basename(file)}.${process.pid}`)
  rmSync(temporary, { force: true }) // one a crashed process of the same pid left
  try {
    writeFileSync(temporary, content, { mode, flag: 'wx' })
    chmodSync(temporary, mode)
    renameSync(temporary, file)
  } catch (err) {
    rmSync(temporary, { force: true })
    throw err
  }
}
