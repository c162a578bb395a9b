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

/**
 * The node's files with the owner's lines as NSS answers them, the owner named exactly once
 * by uid (with the job's gid) and listed in exactly their groups: an engine that looks the
 * job's user up in the container (Podman's exec) then finds what cbatch found on the host.
 */
export function writeAccountFiles(dir: string, { passwd, groups }: AccountLines, owner: Identity, etc = '/etc'): AccountFiles {
  const own = (file: string) => readFileSync(join(etc, file), 'utf8').split('\n').filter(Boolean)
  const fields = (line: string) => line.split(':')
  const ownerLine = fields(passwd)
  ownerLine[3] = String(owner.gid)
  const users = [...own('passwd').filter(line => fields(line)[0] !== owner.name && fields(line)[2] !== String(owner.uid)), ownerLine.join(':')]
  const known = new Set(own('group').map(line => fields(line)[0]))
  const theirs = new Set([owner.gid, ...owner.groups].map(String))
  const withOwner = (line: string) => {
    const [name, password, gid, members = ''] = fields(line)
    const others = members.split(',').filter(m => m && m !== owner.name)
    return [name, password, gid, [...others, ...(theirs.has(gid) ? [owner.name] : [])].join(',')].join(':')
  }
  const groupFile = [...own('group'), ...groups.filter(line => !known.has(fields(line)[0]))].map(withOwner)
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') }
  // Modes set whole: pbs_mom runs the mother superior's prologue under umask 0077, and the
  // job (not root) must read these.
  replaceFile(files.passwd, `${users.join('\n')}\n`, 0o644)
  replaceFile(files.group, `${groupFile.join('\n')}\n`, 0o644)
  return files
}

export function removeAccountFiles(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
