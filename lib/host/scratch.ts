// The per-job scratch directory: `<base>/<container name>`, the owner's, made by the
// prologue and removed by the epilogue. The base, and every directory above it, must be
// root's alone, sticky or not: no one else can plant or swap anything beside a job's
// directory, nor make the base first (which would refuse every job). Since that depends
// only on directories root owns, a user can neither cause nor lift the refusal; `config
// check` and `doctor` report it before any job meets it. Inside, what the job left is
// removed with its owner's credentials, so links it planted lead nowhere root could be
// misled to.
import { chownSync, lstatSync, mkdirSync, rmdirSync, unlinkSync } from 'node:fs'
import { basename, dirname, join, normalize } from 'node:path'
import { emptyAsOwner } from './asowner.ts'
import { UnsafePathError } from '../errors.ts'
import type { Identity } from './identity.ts'
import { assertRootControlled, makeRootDir } from './trusted.ts'

/**
 * Checks (and makes, if missing) the scratch base: root's, writable by no one else, above
 * it too. Mode 0711: owners reach their own directory in it (their files are removed as
 * them) but cannot list the others.
 */
export function checkScratchBase(base: string): void {
  makeRootDir(base, 'scratch base', 0o711)
}

/** A fresh scratch directory for the job (an earlier run's is removed first). */
export async function makeScratch(base: string, name: string, owner: Identity): Promise<string> {
  checkScratchBase(base)
  const dir = join(base, name)
  await removeScratchDir(dir)
  mkdirSync(dir, { mode: 0o700 })
  chownSync(dir, owner.uid, owner.gid) // in a root-only directory: nobody can have swapped it
  return dir
}

/**
 * Removes a job's scratch directory `<base>/<name>`, whatever the job left in it (links,
 * any depth). Callers pass the one they made or expect (the epilogue: the queue's base from
 * the config, the job's container name), never a path only a label names. It only removes:
 * the base is checked (root's alone, above it too), never made or chmodded here (that is
 * the prologue's, checkScratchBase), and a missing base has nothing to remove.
 */
export async function removeScratchDir(dir: string): Promise<void> {
  const base = dirname(dir), name = basename(dir)
  if (!dir.startsWith('/') || dir.endsWith('/') || normalize(dir) !== dir || name === '..') {
    throw new UnsafePathError(`scratch directory ${dir} is not a job's`)
  }
  if (!lstatSync(base, { throwIfNoEntry: false })) return
  assertRootControlled(base, 'scratch base', { strict: true })
  let stat
  try {
    stat = lstatSync(dir)
  } catch {
    return
  }
  if (!stat.isDirectory()) return unlinkSync(dir)
  await emptyAsOwner({ uid: stat.uid, gid: stat.gid, groups: [] }, dir)
  try {
    rmdirSync(dir)
  } catch (err) {
    throw new UnsafePathError(`scratch directory ${dir} could not be emptied`, (err as Error).message)
  }
}
