// Credentials for private registries: Docker's `config.json` `auths` format, in a file of
// root's that no one else may read (it holds passwords). Read per pull, handed to the
// engine for that pull only (X-Registry-Auth); never logged, never in the job's container.
import { readFileSync, statSync } from 'node:fs'
import { ConfigError, UnsafePathError } from '../errors.ts'
import { assertRootControlled } from './trusted.ts'

export interface RegistryAuth {
  username: string
  password: string
  serveraddress: string
}

/** Docker Hub is keyed by its old index URL in config.json files. */
const HUB_KEYS = ['docker.io', 'index.docker.io', 'https://index.docker.io/v1', 'registry-1.docker.io']
const HUB_ADDRESS = 'https://index.docker.io/v1/'

/** Throws UnsafePathError unless root alone may change `file`, and read it. */
export function assertCredentialsFile(file: string): void {
  assertRootControlled(file, 'registry credentials')
  if (statSync(file).mode & 0o077) {
    throw new UnsafePathError(`registry credentials ${file} is not safe: others may read it (chmod 600 ${file})`)
  }
}

/** The credentials `file` holds for `registry`, if any. */
export function registryAuth(file: string, registry: string): RegistryAuth | undefined {
  assertCredentialsFile(file)
  let auths: Record<string, { auth?: string; username?: string; password?: string }>
  try {
    auths = (JSON.parse(readFileSync(file, 'utf8')) as { auths?: typeof auths }).auths ?? {}
  } catch (err) {
    // Only the parser's complaint: never a line of the file itself.
    throw new ConfigError(file, [{ path: 'auths', message: `not Docker's config.json format (${(err as Error).name})` }])
  }
  const keys = registry === 'docker.io' ? HUB_KEYS : [registry, `https://${registry}`, `http://${registry}`]
  const entry = Object.entries(auths).find(([key]) => keys.includes(key.replace(/\/+$/, '')))?.[1]
  if (!entry) return undefined
  const [username, ...rest] = entry.auth ? Buffer.from(entry.auth, 'base64').toString('utf8').split(':') : [entry.username ?? '', entry.password ?? '']
  const password = entry.auth ? rest.join(':') : entry.password ?? ''
  if (!username || !password) throw new ConfigError(file, [{ path: `auths.${registry}`, message: 'no user name and password' }])
  return { username, password, serveraddress: registry === 'docker.io' ? HUB_ADDRESS : registry }
}
