// The container's /etc/passwd and /etc/group. Most sites serve their users from LDAP or
// SSSD, which no file holds: the node's own files, with the owner and their groups added as
// NSS knows them, let names resolve inside the container (`id`, `whoami`, `ls -l`, MPI
// launchers). Written per job into root's own directory in mom_priv, mounted read-only.
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { IdentityError } from '../errors.ts'
import { groupLines, passwdLine, type Identity } from './identity.ts'
import { replaceFile } from './trusted.ts'

export interface AccountFiles {
  passwd: string
  group: string
}

/** Directory of a job's account files. */
export function accountsDir(momPriv: string, name: string): string {
  return join(momPriv, 'cbatch-accounts', name)
}

/** The owner's lines of the user and group databases, as NSS answers. */
export interface AccountLines {
  passwd: string
  groups: string[]
}

export async function accountLines(owner: Identity): Promise<AccountLines> {
  const [passwd, groups] = await Promise.all([passwdLine(owner.name), groupLines([...new Set([owner.gid, ...owner.groups])])])
  if (!passwd) throw new IdentityError(`unknown user ${owner.name} on this node`)
  return { passwd, groups }
}

export function writeAccountFiles(dir: string, { passwd, groups }: AccountLines, etc = '/etc'): AccountFiles {
  const merged = (file: string, lines: string[], key: (line: string) => string) => {
    const own = readFileSync(join(etc, file), 'utf8').split('\n').filter(Boolean)
    const known = new Set(own.map(key))
    return `${[...own, ...lines.filter(line => !known.has(key(line)))].join('\n')}\n`
  }
  const byName = (line: string) => line.split(':')[0]
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') }
  // Modes set whole: pbs_mom runs the mother superior's prologue under umask 0077, and the
  // job (not root) must read these.
  replaceFile(files.passwd, merged('passwd', [passwd], byName), 0o644)
  replaceFile(files.group, merged('group', groups, byName), 0o644)
  return files
}

export function removeAccountFiles(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
