// A registry's HTTP API (OCI distribution), read-only and bounded: what cbatch fetches
// itself beside the engine's pulls (image signatures, job/signatures.ts). Plain HTTP only to
// loopback, as the engine itself does unless told otherwise; https everywhere else. The
// registry's answers are hostile input: every body is read up to a bound, never further.
import { createHash } from 'node:crypto'
import { ImageDeniedError, ImagePullError, RegistryAnswerError } from '../errors.ts'
import type { RegistryAuth } from './registryauth.ts'

/** What a registry may answer for a manifest or a blob asked for, and the body it sent. */
export interface Fetched {
  body: Buffer
  mediaType: string
}

const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
]

/** The host the API of `registry` answers on: Docker Hub's is not its name. */
function apiBase(registry: string): string {
  if (registry === 'docker.io') return 'https://registry-1.docker.io'
  const host = registry.replace(/:\d+$/, '')
  const loopback = host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]'
  return `${loopback ? 'http' : 'https'}://${registry}`
}

/** `reg:5000/a/b` -> `a/b`; a Docker Hub name of one component is in `library/`. */
export function repositoryPath(repository: string, registry: string): string {
  const path = repository.startsWith(`${registry}/`) ? repository.slice(registry.length + 1) : repository
  return registry === 'docker.io' && !path.includes('/') ? `library/${path}` : path
}

export class RegistryClient {
  private authorization?: string
  private readonly base: string

  constructor(readonly registry: string, private readonly auth: RegistryAuth | undefined, private readonly timeoutMs: number) {
    this.base = apiBase(registry)
  }

  /** The manifest `reference` (a tag or a digest) of `repository`; undefined if the registry has none. */
  async manifest(repository: string, reference: string, maxBytes: number): Promise<Fetched | undefined> {
    const path = repositoryPath(repository, this.registry)
    return this.get(`/v2/${path}/manifests/${reference}`, repository, maxBytes, { accept: MANIFEST_TYPES.join(', ') })
  }

  /** The blob `digest` of `repository`, checked against its digest; undefined if the registry has none. */
  async blob(repository: string, digest: string, maxBytes: number): Promise<Buffer | undefined> {
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new RegistryAnswerError(`registry ${this.registry} named a blob ${JSON.stringify(digest.slice(0, 80))}, not a sha256 digest`)
    const fetched = await this.get(`/v2/${repositoryPath(repository, this.registry)}/blobs/${digest}`, repository, maxBytes, {})
    if (!fetched) return undefined
    const actual = `sha256:${createHash('sha256').update(fetched.body).digest('hex')}`
    if (actual !== digest) throw new RegistryAnswerError(`registry ${this.registry} sent blob ${digest} with other content (${actual})`)
    return fetched.body
  }

  private async get(path: string, repository: string, maxBytes: number, headers: Record<string, string>): Promise<Fetched | undefined> {
    let response = await this.request(`${this.base}${path}`, headers)
    if (response.status === 401 && !this.authorization) {
      await response.body?.cancel()
      this.authorization = await this.login(response.headers.get('www-authenticate') ?? '', repository)
      response = await this.request(`${this.base}${path}`, headers)
    }
    if (response.status === 404) {
      await response.body?.cancel()
      return undefined
    }
    if (response.status === 401 || response.status === 403) {
      await response.body?.cancel()
      throw new ImageDeniedError(`registry ${this.registry} refused access to ${repository} (HTTP ${response.status}${this.auth ? '' : ', and images.auth has no credentials for it'})`)
    }
    if (!response.ok) {
      await response.body?.cancel()
      throw new ImagePullError(`registry ${this.registry} answered HTTP ${response.status} for ${repository}`)
    }
    const body = await readBounded(response, maxBytes, `registry ${this.registry}'s answer for ${repository}`)
    return { body, mediaType: (response.headers.get('content-type') ?? '').split(';')[0].trim() }
  }

  private async request(url: string, headers: Record<string, string>): Promise<Response> {
    try {
      return await fetch(url, {
        headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        signal: AbortSignal.timeout(this.timeoutMs), redirect: 'follow',
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name
      throw new ImagePullError(`cannot reach registry ${this.registry}`, cause === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : cause)
    }
  }

  /** The Authorization a 401's challenge asks for: the credentials themselves (Basic), or a token made from them (Bearer). */
  private async login(challenge: string, repository: string): Promise<string> {
    const basic = this.auth && `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString('base64')}`
    if (/^basic\b/i.test(challenge)) {
      if (!basic) throw new ImageDeniedError(`registry ${this.registry} wants credentials for ${repository}, and images.auth has none for it`)
      return basic
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map(m => [m[1].toLowerCase(), m[2]]))
    if (!/^bearer\b/i.test(challenge) || !params.realm) throw new ImagePullError(`registry ${this.registry} asked for an authentication cbatch does not know: ${challenge.slice(0, 80)}`)
    const realm = new URL(params.realm)
    if (realm.protocol !== 'https:' && apiBase(realm.host).startsWith('https:')) throw new ImagePullError(`registry ${this.registry} sends for tokens to ${realm.origin}, not over https`)
    if (params.service) realm.searchParams.set('service', params.service)
    realm.searchParams.set('scope', params.scope ?? `repository:${repositoryPath(repository, this.registry)}:pull`)
    let response: Response
    try {
      response = await fetch(realm, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(this.timeoutMs) })
    } catch (err) {
      throw new ImagePullError(`cannot reach the token service of registry ${this.registry}`, (err as Error).name)
    }
    if (!response.ok) {
      await response.body?.cancel()
      throw new ImageDeniedError(`registry ${this.registry} gave no token for ${repository} (HTTP ${response.status})`)
    }
    const body = (await readBounded(response, 64 * 1024, `registry ${this.registry}'s token`)).toString('utf8')
    let token: unknown
    try {
      const answer = JSON.parse(body) as { token?: unknown; access_token?: unknown }
      token = answer.token ?? answer.access_token
    } catch {
      token = undefined
    }
    if (typeof token !== 'string' || !token) throw new RegistryAnswerError(`registry ${this.registry}'s token service sent no token`)
    return `Bearer ${token}`
  }
}

/** The body of `response`, refused once it is longer than `maxBytes`: never read whole first. */
export async function readBounded(response: Response, maxBytes: number, what: string): Promise<Buffer> {
  const tooLong = () => new RegistryAnswerError(`${what} is longer than ${maxBytes} bytes, more than cbatch reads`)
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel()
    throw tooLong()
  }
  const chunks: Buffer[] = []
  let length = 0
  const reader = response.body?.getReader()
  for (let read = await reader?.read(); read && !read.done; read = await reader!.read()) {
    length += read.value.length
    if (length > maxBytes) {
      await reader!.cancel()
      throw tooLong()
    }
    chunks.push(Buffer.from(read.value))
  }
  return Buffer.concat(chunks)
}
