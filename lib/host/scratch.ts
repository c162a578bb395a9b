// The per-job scratch directory: `<base>/<container name>`, the owner's, made by the
// prologue and removed by the epilogue. The base must be root's alone, so no one else can
// plant or swap anything beside a job's directory; inside it, what the job left is removed
// with its owner's credentials, so links it planted lead nowhere root could be misled to.
import { chownSync, lstatSync, mkdirSync, rmdirSync, unlinkSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { emptyAsOwner } from './asowner.ts'
import { UnsafePathError } from '../errors.ts'
import type { Identity } from './identity.ts'
import { assertRootControlled } from './trusted.ts'

/** Checks (and makes, if missing) the scratch base: root's, writable by no one else. */
export function checkScratchBase(base: string): void {
  assertRootControlled(dirname(base), 'directory of the scratch base')
  try {
    mkdirSync(base, { mode: 0o755 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new UnsafePathError(`scratch base ${base} cannot be made`, (err as Error).message)
  }
  assertRootControlled(base, 'scratch base', { strict: true })
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

/** Removes a job's scratch directory, whatever the job left in it (links, any depth). */
export async function removeScratchDir(dir: string): Promise<void> {
  checkScratchBase(dirname(dir))
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
