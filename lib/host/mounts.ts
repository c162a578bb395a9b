// Host directories a job's container gets: resolved, judged, mounted, checked. A path the
// job names (home, work dir, `#CBATCH mount=`) is the owner's to swap at any moment, so:
// 1. it is resolved to its real path as the owner reaches it (links, `..`, `//`; the
//    owner's own permissions on every directory on the way);
// 2. that real path is judged: never-mounted places, the queue's allowed roots;
// 3. the real path is what is mounted, at the same path in the container;
// 4. the directory judged is remembered by device and inode; once the container runs, its
//    own mount table must have a mount at each target whose root is that directory (reached
//    without following any link), or the job is refused: a swap between the check and the
//    engine's mount, at the source or at the target, cannot go unnoticed (proveBinds).
import { lstatSync, readFileSync, realpathSync, statSync } from 'node:fs'
import { posix } from 'node:path'
import { PolicyError, UnsafePathError } from '../errors.ts'
import type { Identity } from './identity.ts'
import { realDirectoryAsOwner } from './asowner.ts'
import { isWithin, overlapping } from './paths.ts'

export interface HostMount {
  source: string
  target: string
  readOnly: boolean
  /** What it is, for messages: 'home directory', 'PBS_O_WORKDIR', 'volume', … */
  what: string
  /** The object judged, by device and inode. */
  identity: FileId
}

/** A file object, by device and inode: what was judged, and what a mount must show. */
export interface FileId {
  dev: number
  ino: number
}

export interface MountRequest {
  owner: Identity
  /** The queue's site volumes and the roots below which a job may ask for mounts. */
  policy: {
    volumes: { source: string; target?: string; readOnly?: boolean }[]
    userMounts: { source: string; readOnly?: boolean }[]
  }
  /** `#CBATCH mount=` paths the job asked for. */
  requested: { path: string; readOnly: boolean }[]
  /** PBS_O_WORKDIR and TMPDIR from pbs_mom. */
  workDir?: string
  tmpDir?: string
  /** Host paths no mount may be, hold or lie in (policy/security.ts neverMounted). */
  neverMounted: string[]
}

/** The site's volumes, then the job's own directories: each real, allowed, and never widening a read-only one. */
export async function planMounts(req: MountRequest): Promise<HostMount[]> {
  const { owner, policy } = req
  const planned: HostMount[] = []
  const judge = (path: string, source: string, what: string) => {
    const exposed = overlapping(source, req.neverMounted)
    const real = source === path ? '' : ` (really ${source})`
    if (exposed) throw new PolicyError(`${what} ${path}${real} cannot be mounted into the job's container (it would expose ${exposed})`)
  }
  // The site's volumes are the admin's: resolved as root, judged all the same.
  for (const v of policy.volumes) {
    const source = realAsRoot(v.source, 'volume')
    judge(v.source, source, 'volume')
    planned.push({ source, target: v.target ?? v.source, readOnly: v.readOnly ?? false, what: 'volume', identity: judged(v.source, source, 'volume') })
  }
  const roots = policy.userMounts.flatMap(u => {
    try {
      return [{ source: realpathSync(u.source), readOnly: u.readOnly ?? false }]
    } catch {
      return [] // a root missing on this node offers nothing
    }
  })
  // What the site made read-only: no job directory may open it up.
  const siteReadOnly = [
    ...planned.filter(m => m.readOnly).map(m => ({ source: m.source, what: `read-only volume ${m.source}` })),
    ...roots.filter(r => r.readOnly).map(r => ({ source: r.source, what: `read-only mount root ${r.source}` })),
  ]
  const wanted: { path: string; what: string; readOnly: boolean; optional: boolean; root?: boolean }[] = [
    ...req.requested.map(m => ({ path: m.path, what: 'requested mount', readOnly: m.readOnly, optional: false, root: true })),
    { path: owner.home, what: 'home directory', readOnly: false, optional: true },
    ...(req.workDir ? [{ path: req.workDir, what: 'PBS_O_WORKDIR', readOnly: false, optional: true }] : []),
    ...(req.tmpDir ? [{ path: req.tmpDir, what: 'TMPDIR', readOnly: false, optional: true }] : []),
  ]
  const resolved = await Promise.all(wanted.map(w => realDirectoryAsOwner(owner, w.path)))
  for (const [i, w] of wanted.entries()) {
    const source = resolved[i]
    if (source === undefined) {
      // A home or submission directory this node does not have: the job runs without it, as natively.
      if (w.optional && !existsAsRoot(w.path)) continue
      throw new PolicyError(`${w.what} ${w.path} does not exist or ${owner.name} may not enter it`)
    }
    let readOnly = w.readOnly
    if (w.root) {
      const root = roots.find(r => isWithin(source, r.source))
      if (!root) {
        throw new PolicyError(`mount ${w.path} is not allowed in this queue; allowed below: ${policy.userMounts.map(u => u.source).join(', ') || 'none'}`)
      }
      readOnly ||= root.readOnly
    }
    judge(w.path, source, w.what)
    // Inside something read-only stays read-only; around what the site made read-only would open it up.
    if (siteReadOnly.some(r => isWithin(source, r.source)) || planned.some(m => m.readOnly && isWithin(source, m.source))) readOnly = true
    const widened = siteReadOnly.find(r => isWithin(r.source, source) && r.source !== source)
    if (widened && !readOnly) throw new PolicyError(`${w.what} ${w.path} cannot be mounted: it holds the ${widened.what}`)
    // Already visible where it is, as it should be (inside a volume mounted at its own path, or another of the job's)?
    const covering = planned.find(m => isWithin(source, m.source) && m.target === m.source)
    if (covering && covering.readOnly === readOnly) continue
    planned.push({ source, target: source, readOnly, what: w.what, identity: judged(w.path, source, w.what) })
  }
  return planned
}

/** The object now at a real path, which must have no link on the way (else it changed since it was resolved). */
function judged(path: string, source: string, what: string): FileId {
  const identity = identityWithoutLinks(source)
  if (!identity) throw new UnsafePathError(`${what} ${path} changed while the job's container was made; the job is refused`)
  return identity
}

function realAsRoot(path: string, what: string): string {
  try {
    return realpathSync(path)
  } catch (err) {
    throw new PolicyError(`${what} ${path} does not exist on this node`, (err as NodeJS.ErrnoException).code)
  }
}

function existsAsRoot(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR'
  }
}

/** A bind the container must show: at `target`, the object judged, read-only when asked. */
export interface ExpectedBind {
  target: string
  readOnly: boolean
  identity: FileId
  /** For messages: what the owner would recognise. */
  what: string
}

/**
 * Proves, once the container runs (its init's host pid), that each bind is what was judged,
 * from the container's own mount table: one mount at exactly its target (the engine follows
 * links at the source and at the target, and the owner may have swapped either meanwhile,
 * even one nested in another of the job's writable mounts), read-only if asked, whose root
 * is the very object judged (device and inode, reached inside the container without
 * following any link). Throws UnsafePathError. `readOnlyShown: false`: the table cannot show
 * read-only (gVisor's gofer, host/files.ts), which its runtime enforces instead.
 */
export function proveBinds(pid: number, binds: ExpectedBind[], proc = '/proc', { readOnlyShown = true } = {}): void {
  let table: MountEntry[]
  try {
    table = parseMountInfo(readFileSync(`${proc}/${pid}/mountinfo`, 'utf8'))
  } catch (err) {
    throw new UnsafePathError(`cannot read the mount table of the job's container`, (err as NodeJS.ErrnoException).code)
  }
  for (const bind of binds) {
    // Exactly one: a second mount there would be another bind the owner's links sent astray.
    // Only mounts at the target itself count: those below it (the source's own submounts,
    // bound along, or another bind proven in its turn) are not the one at the target.
    const [entry, ...more] = table.filter(e => e.mountPoint === posix.normalize(bind.target))
    const ok = entry !== undefined && !more.length && (!bind.readOnly || !readOnlyShown || entry.options.includes('ro'))
      && sameObject(shownInContainer(pid, bind.target, proc), bind.identity)
    if (!ok) throw new UnsafePathError(`${bind.what} changed while the job's container was made; the job is refused`)
  }
}

export interface MountEntry {
  mountPoint: string
  /** Per-mount options (`ro`, `nosuid`, …). */
  options: string[]
}

/** /proc/<pid>/mountinfo lines (proc(5)): mount point is field 5, per-mount options field 6; `\ooo` escapes. */
export function parseMountInfo(text: string): MountEntry[] {
  const unescape = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
  return text.split('\n').filter(Boolean).map(line => {
    const fields = line.split(' ')
    return { mountPoint: unescape(fields[4]), options: fields[5].split(',') }
  })
}

/**
 * Device and inode of what a running container (its init's host pid) shows at `target`;
 * undefined if nothing, or if any component on the way is a link: root never resolves a
 * path inside a container through the host's root (an image's absolute link would lead
 * into the host).
 */
export function shownInContainer(pid: number, target: string, proc = '/proc'): FileId | undefined {
  return identityWithoutLinks(target, `${proc}/${pid}/root`)
}

/** Throws UnsafePathError if any mount's real path no longer holds the object judged (e.g. after the engine failed to mount it). */
export function assertUnchanged(mounts: HostMount[]): void {
  const moved = mounts.find(m => !sameObject(identityWithoutLinks(m.source), m.identity))
  if (moved) throw changed(moved)
}

/** Whether two stats are of one file system object. */
export const sameObject = (a: FileId | undefined, b: FileId) => a !== undefined && a.dev === b.dev && a.ino === b.ino

const changed = (m: HostMount) => new UnsafePathError(`${m.what} ${m.source} changed while the job's container was made; the job is refused`)

/**
 * Device and inode of `path` if no component of it is a link (a real path must have none),
 * below `root` (a container's root, /proc/<pid>/root, entered as the link it is).
 */
export function identityWithoutLinks(path: string, root = '/'): FileId | undefined {
  let here = root
  let stat
  try {
    stat = statSync(here)
  } catch {
    return undefined
  }
  for (const part of posix.normalize(path).split('/').filter(Boolean)) {
    here = posix.join(here, part)
    try {
      stat = lstatSync(here)
    } catch {
      return undefined
    }
    if (stat.isSymbolicLink()) return undefined
  }
  return { dev: stat.dev, ino: stat.ino }
}
