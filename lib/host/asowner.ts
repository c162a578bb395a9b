// Work that root does for a job in places its owner can reach or change, done with the
// owner's own credentials instead: then a swapped link or a planted tree can only lead to
// what the owner could reach anyway. The programs run with a fixed, clean environment.
import { execFile } from 'node:child_process'
import type { Identity } from './identity.ts'
import { CLEAN_ENV, execResult } from './exec.ts'

/** argv that runs `command` as the owner (uid, gid and all their groups), through util-linux setpriv. */
function asOwner(owner: Pick<Identity, 'uid' | 'gid' | 'groups'>, command: string[]): string[] {
  return ['setpriv', `--reuid=${owner.uid}`, `--regid=${owner.gid}`, `--groups=${[owner.gid, ...owner.groups].join(',')}`, '--', ...command]
}

/**
 * The real path of directory `path` as the owner reaches it (links, `..`, `//` resolved by
 * the kernel), or undefined when the owner cannot enter it or it does not exist. Entering
 * it as the owner proves every directory on the way lets them through.
 */
export async function realDirectoryAsOwner(owner: Pick<Identity, 'uid' | 'gid' | 'groups'>, path: string): Promise<string | undefined> {
  // Statically linked busybox: nothing of the caller's is loaded, whoever the owner is.
  const result = await execResult(asOwner(owner, ['/bin/busybox', 'sh', '-c', 'cd -P -- "$1" && pwd -P', 'sh', path]))
  if (result.code !== 0) return undefined
  const real = result.stdout.replace(/\n$/, '')
  return real.startsWith('/') ? real : undefined
}

/**
 * The content of file `path` as the owner reads it (every link and directory on the way with
 * their rights), or undefined when they cannot read it.
 */
export function readFileAsOwner(owner: Pick<Identity, 'uid' | 'gid' | 'groups'>, path: string): Promise<Buffer | undefined> {
  const [file, ...args] = asOwner(owner, ['/bin/busybox', 'cat', '--', path])
  return new Promise(resolve => {
    execFile(file, args, { env: CLEAN_ENV, encoding: 'buffer', maxBuffer: 64 << 20 }, (err, stdout) => resolve(err ? undefined : stdout))
  })
}

/**
 * Empties directory `dir` as its owner (GNU rm walks any depth without following links);
 * root then removes the empty directory itself from its root-only parent.
 */
export async function emptyAsOwner(owner: Pick<Identity, 'uid' | 'gid' | 'groups'>, dir: string): Promise<void> {
  // Directories the job made unwritable are opened up first, by their owner.
  await execResult(asOwner(owner, ['chmod', '-R', 'u+rwx', '--', dir]))
  await execResult(asOwner(owner, ['find', dir, '-mindepth', '1', '-xdev', '-delete']))
}
