// Signed images only (a queue's `signatures`): the image must carry a signature by a key of
// the site's root-owned key files, for the digest the node holds, in the image's own
// repository: a cosign signature as cosign stores it in the registry (the
// `sha256-<digest>.sig` tag), or a sigstore bundle attached as an OCI referrer (found by the
// referrers tag schema, `sha256-<digest>`, which registries without the referrers API use). The
// digest so verified is what the container is made from (`repo@sha256:…`): a tag moved
// meanwhile cannot change what runs. Verified digests are cached per repository, digest
// and key files, in root's state, so a check costs a pull, not a job. Verified offline: the
// keys are the trust, no transparency log or certificate authority is asked.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto'
import { bundleFromJSON, type Bundle } from '@sigstore/bundle'
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify'
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ImageStore } from '../engine/engine.ts'
import { CbatchError, ConfigError, RegistryAnswerError, SignatureError } from '../errors.ts'
import { RegistryClient } from '../host/registry.ts'
import { registryAuth } from '../host/registryauth.ts'
import { assertRootControlled, makeRootDir, replaceFile } from '../host/trusted.ts'
import { ImageReference } from '../policy/reference.ts'

export const SIGNATURE_CACHE_DIR = '/var/lib/cbatch/signatures'
/** Most verified digests kept; the oldest go first. */
export const SIGNATURE_CACHE_ENTRIES = 1024

/** Bounds of what a registry may send for one signature check (OCI's own bound for manifests). */
export const SIGNATURE_LIMITS = { manifestBytes: 4 * 1024 ** 2, payloadBytes: 256 * 1024, signatures: 32 }

const SIMPLE_SIGNING = 'application/vnd.dev.cosign.simplesigning.v1+json'
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature'
const COSIGN_TYPE = 'cosign container image signature'

export interface TrustedKey {
  file: string
  /** sha256 of the key's DER SubjectPublicKeyInfo, hex: how the accounting names the signer. */
  fingerprint: string
  key: KeyObject
  hash: 'sha256' | 'sha384' | 'sha512'
}

/** The keys a queue trusts, and a hash of their files: a cached verdict holds for these keys only. */
export interface Trust {
  keys: TrustedKey[]
  hash: string
}

/** ECDSA keys, as cosign makes them (P-256 by default), each curve with the hash cosign signs with. */
const CURVE_HASH: Record<string, TrustedKey['hash']> = { prime256v1: 'sha256', secp384r1: 'sha384', secp521r1: 'sha512' }

/**
 * The public keys in `files` (PEM, one or more `PUBLIC KEY` blocks each, as `cosign
 * generate-key-pair` writes cosign.pub). Each file is policy: root's, writable by root alone.
 */
export function loadTrust(files: string[]): Trust {
  const keys: TrustedKey[] = []
  const hash = createHash('sha256')
  for (const file of files) {
    assertRootControlled(file, 'signature keys')
    const text = readFileSync(file, 'utf8')
    hash.update(`${file}\n${text}\n`)
    const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? []
    if (!blocks.length) throw new ConfigError(file, [{ path: '', message: 'no PEM public key (-----BEGIN PUBLIC KEY-----) in it' }], 'bad signature keys')
    for (const [i, pem] of blocks.entries()) {
      let key: KeyObject
      try {
        key = createPublicKey(pem)
      } catch (err) {
        throw new ConfigError(file, [{ path: `key ${i + 1}`, message: `not a public key (${(err as Error).message})` }], 'bad signature keys')
      }
      const curve = key.asymmetricKeyDetails?.namedCurve
      const keyHash = key.asymmetricKeyType === 'ec' && curve ? CURVE_HASH[curve] : undefined
      if (!keyHash) throw new ConfigError(file, [{ path: `key ${i + 1}`, message: `a ${key.asymmetricKeyType} key${curve ? ` on ${curve}` : ''}; cbatch verifies ECDSA keys on P-256, P-384 or P-521 (cosign's)` }], 'bad signature keys')
      const fingerprint = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('hex')
      keys.push({ file, fingerprint, key, hash: keyHash })
    }
  }
  return { keys, hash: hash.digest('hex') }
}

/** The image as verified: the reference to make the container from, and who signed it. */
export interface VerifiedImage {
  /** `repository@sha256:…`: what runs. */
  reference: string
  digest: string
  /** `cosign key sha256:<fingerprint> (<file>)`. */
  signer: string
}

export interface SignatureCheck {
  keys: string[]
  /** images.auth: credentials of private registries. */
  auth?: string
  /** Bound of each registry request. */
  timeoutMs: number
  cacheDir?: string
  cacheEntries?: number
}

/**
 * The image on the node, `image` as the queue granted it, verified: its digest there (the
 * one written, if pinned; else the one the node's copy came with from its registry), signed
 * by a trusted key for its repository. Throws SignatureError when it is not.
 */
export async function verifiedImage(engine: Pick<ImageStore, 'imageDigest'>, image: string, check: SignatureCheck): Promise<VerifiedImage> {
  const trust = loadTrust(check.keys)
  const named = ImageReference.of(image)
  const digest = named.pinned ? named.digest! : await nodeDigest(engine, named)
  const reference = `${named.repository}@${digest}`
  const cacheDir = check.cacheDir ?? SIGNATURE_CACHE_DIR
  const cached = cachedSigner(cacheDir, named.repository, digest, trust)
  if (cached) return { reference, digest, signer: cached }
  const client = new RegistryClient(named.registry, check.auth ? registryAuth(check.auth, named.registry) : undefined, check.timeoutMs)
  const signer = await imageSigner(client, named.repository, digest, trust)
  remember(cacheDir, named.repository, digest, trust, signer, check.cacheEntries ?? SIGNATURE_CACHE_ENTRIES)
  return { reference, digest, signer }
}

/** The digest the node's copy of `named` came with from its repository. */
async function nodeDigest(engine: Pick<ImageStore, 'imageDigest'>, named: ImageReference): Promise<string> {
  const found = await engine.imageDigest(named.text, named.text)
  const repoDigest = found === undefined ? undefined : ImageReference.of(found)
  if (!repoDigest?.pinned || canonicalRepository(repoDigest.repository) !== canonicalRepository(named.repository)) {
    throw new SignatureError(`image ${named.text} has no digest from its registry ${named.registry} on this node (built or loaded here?), so its signature cannot be checked; this queue runs signed images only`)
  }
  return repoDigest.digest!
}

/**
 * A repository as cosign's payloads name it (`critical.identity.docker-reference`): Docker
 * Hub's as `index.docker.io/library/name`, any other as written.
 */
export function canonicalRepository(repository: string): string {
  const registry = ImageReference.of(repository).registry
  if (registry !== 'docker.io') return repository
  const path = repository.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '')
  return `index.docker.io/${path.includes('/') ? path : `library/${path}`}`
}

/**
 * The signer of `digest` in `repository`: the first signature, of cosign's `.sig` tag or of
 * the sigstore bundles among its referrers, that a trusted key verifies and that names this
 * digest and this repository. SignatureError, saying what was wrong, when none does.
 */
export async function imageSigner(client: RegistryClient, repository: string, digest: string, trust: Trust): Promise<string> {
  const problems: string[] = []
  for (const find of [cosignSigner, bundleSigner]) {
    try {
      const signer = await find(client, repository, digest, trust)
      if (signer) return signer
    } catch (err) {
      if (!(err instanceof SignatureError)) throw err
      problems.push(err.message)
    }
  }
  const image = `${repository}@${digest}`
  if (!problems.length) {
    throw new SignatureError(`image ${image} is not signed (no cosign signature ${digest.replace(':', '-')}.sig nor sigstore bundle among its referrers in its registry); this queue runs signed images only`)
  }
  throw new SignatureError(problems.join('; ').slice(0, 1000))
}

/** A manifest of the signatures' own, read within bounds: one that cannot be is a bad signature, not a failed registry. */
async function signatureManifest(client: RegistryClient, repository: string, tag: string): Promise<unknown> {
  const image = `${repository}@${tag}`
  const fetched = await client.manifest(repository, tag, SIGNATURE_LIMITS.manifestBytes).catch(err => {
    throw err instanceof RegistryAnswerError ? new SignatureError(`image ${image}'s signature cannot be read`, err.message) : err
  })
  if (!fetched) return undefined
  try {
    return JSON.parse(fetched.body.toString('utf8'))
  } catch (err) {
    throw new SignatureError(`image ${image}'s signature manifest ${tag} is malformed`, (err as Error).message)
  }
}

/** The signer by cosign's `sha256-<hex>.sig` tag; undefined when there is none. */
export async function cosignSigner(client: RegistryClient, repository: string, digest: string, trust: Trust): Promise<string | undefined> {
  const image = `${repository}@${digest}`
  const tag = `${digest.replace(':', '-')}.sig`
  const manifest = await signatureManifest(client, repository, tag)
  if (manifest === undefined) return undefined
  const layers = (manifest as { layers?: { mediaType?: unknown; digest?: unknown; size?: unknown; annotations?: Record<string, unknown> }[] } | null)?.layers ?? []
  if (!Array.isArray(layers)) throw new SignatureError(`image ${image}'s signature manifest ${tag} is malformed`, 'layers is not a list')
  const signatures = layers.filter(l => l && l.mediaType === SIMPLE_SIGNING && typeof l.annotations?.[SIGNATURE_ANNOTATION] === 'string')
  if (!signatures.length) throw new SignatureError(`image ${image}'s signature manifest ${tag} holds no cosign signature`)
  if (signatures.length > SIGNATURE_LIMITS.signatures) {
    throw new SignatureError(`image ${image} has ${signatures.length} signatures; cbatch checks at most ${SIGNATURE_LIMITS.signatures}`)
  }
  const problems: string[] = []
  for (const layer of signatures) {
    try {
      if (typeof layer.digest !== 'string') throw new Error('a signature layer has no digest')
      if (typeof layer.size === 'number' && layer.size > SIGNATURE_LIMITS.payloadBytes) throw new Error(`a payload of ${layer.size} bytes, more than cbatch reads`)
      const payload = await client.blob(repository, layer.digest, SIGNATURE_LIMITS.payloadBytes)
      if (!payload) throw new Error(`payload ${layer.digest} is not in the registry`)
      return judgeSignature(payload, layer.annotations![SIGNATURE_ANNOTATION] as string, repository, digest, trust)
    } catch (err) {
      // The registry down or refusing is no verdict on the image: said as itself.
      if (err instanceof CbatchError && !(err instanceof RegistryAnswerError)) throw err
      problems.push(err instanceof CbatchError ? err.userMessage : (err as Error).message)
    }
  }
  throw noValidSignature(image, trust, problems)
}

function noValidSignature(image: string, trust: Trust, problems: string[]): SignatureError {
  const files = trust.keys.map(k => k.file).filter((f, i, all) => all.indexOf(f) === i)
  return new SignatureError(`image ${image} has no valid signature by a key this queue trusts (${files.join(', ')}): ${problems.join('; ')}`.slice(0, 1000))
}

const BUNDLE_TYPE = /^application\/vnd\.dev\.sigstore\.bundle(\.v0\.3\+json|\+json;version=0\.3)$/

/**
 * The signer by the sigstore bundles among the image's referrers, as the referrers tag
 * schema lists them (an index under `sha256-<hex>`; the local registry, distribution 2.8,
 * has no referrers API); undefined when it lists none.
 */
export async function bundleSigner(client: RegistryClient, repository: string, digest: string, trust: Trust): Promise<string | undefined> {
  const image = `${repository}@${digest}`
  const index = await signatureManifest(client, repository, digest.replace(':', '-'))
  const listed = (index as { manifests?: { artifactType?: unknown; digest?: unknown }[] } | null)?.manifests
  const bundles = Array.isArray(listed) ? listed.filter(m => m && typeof m.artifactType === 'string' && BUNDLE_TYPE.test(m.artifactType)) : []
  if (!bundles.length) return undefined
  if (bundles.length > SIGNATURE_LIMITS.signatures) throw new SignatureError(`image ${image} has ${bundles.length} sigstore bundles; cbatch checks at most ${SIGNATURE_LIMITS.signatures}`)
  const problems: string[] = []
  for (const entry of bundles) {
    try {
      if (typeof entry.digest !== 'string') throw new Error('a referrer has no digest')
      const referrer = await signatureManifest(client, repository, entry.digest) as { subject?: { digest?: unknown }; layers?: { mediaType?: unknown; digest?: unknown }[] } | undefined
      if (!referrer) throw new Error(`referrer ${entry.digest} is not in the registry`)
      if (referrer.subject?.digest !== digest) throw new Error(`referrer ${entry.digest} refers to ${JSON.stringify(referrer.subject?.digest)}, not ${digest}`)
      const layer = Array.isArray(referrer.layers) ? referrer.layers.find(l => typeof l?.mediaType === 'string' && BUNDLE_TYPE.test(l.mediaType)) : undefined
      if (typeof layer?.digest !== 'string') throw new Error(`referrer ${entry.digest} holds no bundle`)
      const blob = await client.blob(repository, layer.digest, SIGNATURE_LIMITS.payloadBytes)
      if (!blob) throw new Error(`bundle ${layer.digest} is not in the registry`)
      return judgeBundle(blob, repository, digest, trust)
    } catch (err) {
      if (err instanceof CbatchError && !(err instanceof RegistryAnswerError) && !(err instanceof SignatureError)) throw err
      problems.push(err instanceof CbatchError ? err.userMessage : (err as Error).message)
    }
  }
  throw noValidSignature(image, trust, problems)
}

const NO_TRUST_ROOT = { mediaType: '', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }

/**
 * One sigstore bundle judged (@sigstore/verify, offline: a key of the site's, no log, no
 * timestamp authority): a DSSE envelope a trusted key signed, whose in-toto statement names
 * `digest` as a subject of `repository`. The signer, or an Error saying why not.
 */
export function judgeBundle(json: Buffer, repository: string, digest: string, trust: Trust): string {
  let bundle: Bundle
  try {
    bundle = bundleFromJSON(JSON.parse(json.toString('utf8')))
  } catch (err) {
    throw new Error(`a bundle that is not a sigstore bundle (${(err as Error).message})`)
  }
  if (bundle.content.$case !== 'dsseEnvelope') throw new Error('a bundle without a DSSE envelope (cbatch verifies image bundles as cosign makes them)')
  const entity = toSignedEntity(bundle)
  const key = trust.keys.find(k => {
    const material = toTrustMaterial(NO_TRUST_ROOT as unknown as Parameters<typeof toTrustMaterial>[0], () => ({ publicKey: k.key, validFor: () => true }))
    try {
      new Verifier(material, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 }).verify(entity)
      return true
    } catch {
      return false
    }
  })
  if (!key) throw new Error('a bundle signed by no trusted key')
  const { payload, payloadType } = bundle.content.dsseEnvelope
  if (payloadType !== 'application/vnd.in-toto+json') throw new Error(`a bundle of ${JSON.stringify(payloadType)}, not an in-toto statement`)
  let subjects: { name?: unknown; digest?: Record<string, unknown> }[]
  try {
    subjects = (JSON.parse(payload.toString('utf8')) as { subject?: typeof subjects }).subject ?? []
    if (!Array.isArray(subjects)) throw new Error()
  } catch {
    throw new Error('a bundle whose statement is not JSON with a subject list')
  }
  const hex = digest.replace(/^sha256:/, '')
  const subject = subjects.find(s => s?.digest?.sha256 === hex)
  if (!subject) throw new Error(`a bundle that signs ${subjects.map(s => JSON.stringify(s?.digest?.sha256)).join(', ') || 'nothing'}, not ${digest}`)
  const name = subject.name
  if (typeof name !== 'string' || !ImageReference.isValid(name) || canonicalRepository(ImageReference.of(name).repository) !== canonicalRepository(repository)) {
    throw new Error(`a bundle that signs the image for repository ${JSON.stringify(name)}, not ${repository}`)
  }
  return `sigstore bundle, key sha256:${key.fingerprint} (${key.file})`
}

/**
 * One cosign simple-signing signature judged: made by a trusted key over exactly `payload`,
 * and the payload says it signs `digest` of `repository`. The signer, or an Error saying why not.
 */
export function judgeSignature(payload: Buffer, signature: string, repository: string, digest: string, trust: Trust): string {
  const raw = Buffer.from(signature, 'base64')
  const key = trust.keys.find(k => {
    try {
      return verify(k.hash, payload, k.key, raw)
    } catch {
      return false
    }
  })
  if (!key) throw new Error('signed by no trusted key')
  let critical: { type?: unknown; image?: Record<string, unknown>; identity?: Record<string, unknown> } | undefined
  try {
    critical = (JSON.parse(payload.toString('utf8')) as { critical?: typeof critical }).critical
  } catch {
    throw new Error('its payload is not JSON')
  }
  if (!critical || critical.type !== COSIGN_TYPE) throw new Error(`its payload is not a ${COSIGN_TYPE}`)
  const signed = critical.image?.['docker-manifest-digest']
  if (signed !== digest) throw new Error(`it signs digest ${JSON.stringify(signed)}, not ${digest}`)
  const identity = critical.identity?.['docker-reference']
  if (typeof identity !== 'string' || !ImageReference.isValid(identity)
    || canonicalRepository(ImageReference.of(identity).repository) !== canonicalRepository(repository)) {
    throw new Error(`it signs the image for repository ${JSON.stringify(identity)}, not ${repository}`)
  }
  return `cosign key sha256:${key.fingerprint} (${key.file})`
}

/** Where the verdict on one repository, digest and set of keys is kept. */
function cacheFile(dir: string, repository: string, digest: string, trust: Trust): string {
  return join(dir, createHash('sha256').update(`${repository}\n${digest}\n${trust.hash}`).digest('hex'))
}

/** The signer verified before for exactly these, if any. Only verified digests are kept: a signature may come later. */
function cachedSigner(dir: string, repository: string, digest: string, trust: Trust): string | undefined {
  makeRootDir(dirname(dir), 'cbatch state directory')
  makeRootDir(dir, 'signature cache')
  try {
    const entry = JSON.parse(readFileSync(cacheFile(dir, repository, digest, trust), 'utf8')) as Record<string, unknown>
    const same = entry.repository === repository && entry.digest === digest && entry.trust === trust.hash
    return same && typeof entry.signer === 'string' ? entry.signer : undefined
  } catch {
    return undefined
  }
}

/** Keeps a verdict; beyond `entries`, the oldest go. */
function remember(dir: string, repository: string, digest: string, trust: Trust, signer: string, entries: number): void {
  replaceFile(cacheFile(dir, repository, digest, trust), JSON.stringify({ repository, digest, trust: trust.hash, signer }), 0o600)
  const names = readdirSync(dir).filter(n => /^[0-9a-f]{64}$/.test(n))
  if (names.length <= entries) return
  const aged = names.map(n => ({ n, at: statSync(join(dir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 })).sort((a, b) => a.at - b.at)
  for (const { n } of aged.slice(0, names.length - entries)) rmSync(join(dir, n), { force: true })
}
