// Files root relies on: what it reads as policy (the config, its validated copy, registry
// credentials, the engine socket, job files) and what it writes as records or state (node
// log, accounting, metrics, pull claims, image uses, scratch). Root trusts such a path only
// if no one but root can change what it names, the file itself included; it makes names
// only where no one else can make them first; and it appends only to files that are root's
// own, never through a link (docs/security.md).
import { chmodSync, closeSync, constants, fsyncSync, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, renameSync, rmSync, writeFileSync, writeSync, type Stats } from 'node:fs'
import { basename, dirname, join, posix } from 'node:path'
import { UnsafePathError } from '../errors.ts'

const GROUP_OR_OTHER_WRITE = 0o022
const STICKY = 0o1000

interface WalkOptions {
  /**
   * Root makes names here (state, scratch, records): no directory on the way may be
   * writable by others even if sticky, since anyone could make a name in it first.
   */
  strict?: boolean
  /** The path, or its last components, may be missing: root makes them, in a directory of root's alone. */
  mayBeMissing?: boolean
}

/**
 * Throws UnsafePathError unless every component of `path` is owned by root and nothing on
 * the way can be changed by anyone else: no file writable by group or others; no such
 * directory either, unless sticky (others then cannot rename or remove root's entries in
 * it) and not `strict`. A link on the way is followed only if it is root's, and its target
 * is judged the same way. The message says how to fix it.
 */
export function assertRootControlled(path: string, what: string, options: WalkOptions = {}): void {
  if (!path.startsWith('/')) throw new UnsafePathError(`${what} ${path} is not an absolute path`)
  walk(path, what, options, 0)
}

function walk(path: string, what: string, options: WalkOptions, depth: number): void {
  if (depth > 16) throw new UnsafePathError(`${what} ${path}: too many links`)
  const parts = posix.normalize(path).split('/').filter(Boolean)
  const strict = !!options.strict
  let here = '/'
  checkEntry(here, what, path, strict, false)
  for (const [i, part] of parts.entries()) {
    const next = posix.join(here, part)
    const stat = checkEntry(next, what, path, strict, !!options.mayBeMissing)
    if (!stat) {
      // What is missing is made by root, where no one else could make it first.
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

function checkEntry(entry: string, what: string, path: string, strict: boolean, mayBeMissing: boolean): Stats | undefined {
  let stat
  try {
    stat = lstatSync(entry)
  } catch (err) {
    if (mayBeMissing && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UnsafePathError(`${what} ${path} cannot be used`, `${entry}: ${(err as NodeJS.ErrnoException).code}`)
  }
  const unsafe = `${what} ${path} is not safe`
  if (stat.uid !== 0) throw new UnsafePathError(`${unsafe}: ${entry} is not owned by root`)
  if (!(stat.mode & GROUP_OR_OTHER_WRITE)) return stat
  if (stat.isFile()) throw new UnsafePathError(`${unsafe}: others may write to ${entry} (chmod go-w ${entry})`)
  if (!stat.isDirectory()) return stat // a socket's mode says who may connect, not who may replace it
  if (!(stat.mode & STICKY)) throw new UnsafePathError(`${unsafe}: others may write to ${entry} (chmod go-w ${entry})`)
  if (strict) throw new UnsafePathError(`${unsafe}: others may write to ${entry} (sticky, but anyone may make a name in it first): keep it in a directory only root may write to`)
  return stat
}

/** Why a file root appends records to may not be used: it must be root's own regular file with one name. */
function recordProblem(stat: Stats): string | undefined {
  if (!stat.isFile()) return 'not a regular file'
  if (stat.uid !== 0) return 'not owned by root'
  if (stat.mode & GROUP_OR_OTHER_WRITE) return 'others may write to it (chmod go-w it)'
  if (stat.nlink !== 1) return `it has ${stat.nlink} names, so lines could be read or removed through another (remove the other links, or move it aside for a new one)`
  return undefined
}

/**
 * Where root appends records (node log, accounting), as `config check` and `doctor` judge
 * it: root makes the file and its directories, so every one on the way is root's alone,
 * sticky or not; a file already there is root's own regular file with one name.
 */
export function assertRecordFile(file: string, what: string): void {
  assertRootControlled(file, what, { strict: true, mayBeMissing: true })
  const stat = lstatSync(file, { throwIfNoEntry: false })
  const problem = stat && recordProblem(stat)
  if (problem) throw new UnsafePathError(`${what} ${file} is not safe: ${problem}`)
}

/**
 * Makes directory `dir` (and what is missing above it) for root's state, with exactly
 * `mode` whatever the umask; one found with more than `mode` allows is tightened to it
 * (made by an older cbatch, or under another umask: it may have let others read state).
 * Throws UnsafePathError unless it is root's alone, every directory above it too (`strict`).
 */
export function makeRootDir(dir: string, what: string, mode = 0o700): void {
  // Judged before it is made: mkdir follows links, and no one else may make its names first.
  assertRootControlled(dir, what, { strict: true, mayBeMissing: true })
  const first = mkdirSync(dir, { recursive: true, mode })
  if (first) for (let made = dir; ; made = dirname(made)) {
    chmodSync(made, mode)
    if (made === first) break
  }
  const found = lstatSync(dir).mode & 0o7777
  if (found & 0o777 & ~mode) chmodSync(dir, found & ~(0o777 & ~mode))
}

/**
 * Appends `text` to `file` in one write(2), creating it (and its directory) as root's.
 * Never through a link, never to a file that is not root's own, others may write, or has
 * other names. Its directory may be sticky (others cannot swap root's file there); where
 * they could make its name first, `config check` and `doctor` say so (assertRecordFile).
 */
export function appendToRootFile(file: string, text: string, what: string, options: { sync?: boolean } = {}): void {
  assertRootControlled(dirname(file), `directory of the ${what}`, { mayBeMissing: true })
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
  const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o640)
  try {
    const problem = recordProblem(fstatSync(fd))
    if (problem) throw new UnsafePathError(`${what} ${file} is not safe: ${problem}`)
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
