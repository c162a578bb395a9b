// Who the job owner is on this node. Through NSS (getent, id), so LDAP/SSSD users
// of a cluster resolve the same way as local ones.
import { IdentityError } from '../errors.ts'
import { execResult } from './exec.ts'

export interface Identity {
  name: string
  uid: number
  /** Primary gid: the job's group when one was given, else the user's own. */
  gid: number
  /** Every gid the user is a member of, primary included. */
  groups: number[]
  home: string
  shell: string
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]*\$?$/

export async function lookupUser(name: string, group?: string): Promise<Identity> {
  if (!NAME.test(name)) throw new IdentityError(`job owner ${JSON.stringify(name)} is not a valid user name`)
  if (group !== undefined && group !== '' && !NAME.test(group)) {
    throw new IdentityError(`job group ${JSON.stringify(group)} is not a valid group name`)
  }
  const [passwd, ids, groupEntry] = await Promise.all([
    getent('passwd', name),
    execResult(['id', '-G', '--', name]),
    group ? getent('group', group) : Promise.resolve(undefined),
  ])
  if (!passwd) throw new IdentityError(`unknown user ${name} on this node`)
  const [, , uid, gid, , home, shell] = passwd.split(':')
  if (ids.code !== 0) throw new IdentityError(`cannot list the groups of ${name}`, ids.stderr)
  const groups = ids.stdout.trim().split(/\s+/).map(Number)
  let primary = Number(gid)
  if (group) {
    if (!groupEntry) throw new IdentityError(`unknown group ${group} on this node`)
    primary = Number(groupEntry.split(':')[2])
    if (!groups.includes(primary)) throw new IdentityError(`user ${name} is not a member of group ${group}`)
  }
  return { name, uid: Number(uid), gid: primary, groups, home, shell: shell || '/bin/sh' }
}

/** The group database's lines for these gids, as NSS answers (files, LDAP, SSSD alike). */
export async function groupLines(gids: number[]): Promise<string[]> {
  const result = await execResult(['getent', 'group', '--', ...gids.map(String)])
  return result.stdout.split('\n').filter(Boolean)
}

/** The user database's line for a user, as NSS answers. */
export async function passwdLine(name: string): Promise<string | undefined> {
  return getent('passwd', name)
}

async function getent(database: 'passwd' | 'group', key: string): Promise<string | undefined> {
  const result = await execResult(['getent', database, '--', key])
  return result.code === 0 ? result.stdout.split('\n')[0] : undefined
}
