// Who the job owner is on this node. Through NSS (getent, id), so LDAP/SSSD users
// of a cluster resolve the same way as local ones.
import { execFile } from 'node:child_process'
import { IdentityError } from '../errors.ts'

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
    command('id', ['-G', '--', name]),
    group ? getent('group', group) : Promise.resolve(undefined),
  ])
  if (!passwd) throw new IdentityError(`unknown user ${name} on this node`)
  const [, , uid, gid, , home, shell] = passwd.split(':')
  if (ids.exitCode !== 0) throw new IdentityError(`cannot list the groups of ${name}`, ids.stderr)
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
  const result = await command('getent', ['group', '--', ...gids.map(String)])
  return result.stdout.split('\n').filter(Boolean)
}

/** The user database's line for a user, as NSS answers. */
export async function passwdLine(name: string): Promise<string | undefined> {
  return getent('passwd', name)
}

async function getent(database: 'passwd' | 'group', key: string): Promise<string | undefined> {
  const result = await command('getent', [database, '--', key])
  return result.exitCode === 0 ? result.stdout.split('\n')[0] : undefined
}

// Node's own execFile, not execa: these run in every hook, and loading execa alone costs
// more than the whole start-up budget of a hook (see bench/RESULTS.md). Root runs them:
// with a fixed environment, never one of a job's.
function command(file: string, args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(file, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code
      resolve({ exitCode: err ? (typeof code === 'number' ? code : -1) : 0, stdout, stderr: stderr || (err?.message ?? '') })
    })
  })
}
