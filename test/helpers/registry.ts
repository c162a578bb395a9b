// Writes to the provisioned registry (127.0.0.1:5000) with its HTTP API, as cosign itself
// does: blobs, manifests, cosign's signatures (the `sha256-<digest>.sig` tag holding a
// simple-signing payload and its signature) and sigstore bundles attached as OCI referrers
// (the referrers tag schema: an index under `sha256-<digest>`), made with keys made at test time.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const REGISTRY = '127.0.0.1:5000'
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

const sha256 = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`
const pathOf = (repository: string) => repository.slice(`${REGISTRY}/`.length)

/** A repository of its own for one test file: nothing another test pushed is in it. */
export function freshRepository(what: string): string {
  return `${REGISTRY}/cbatch-sigtest/${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}

export async function pushBlob(repository: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const body = Buffer.from(data)
  const digest = sha256(body)
  const start = await fetch(`http://${REGISTRY}/v2/${pathOf(repository)}/blobs/uploads/`, { method: 'POST' })
  if (start.status !== 202) throw new Error(`blob upload not started: HTTP ${start.status}`)
  const location = new URL(start.headers.get('location')!, `http://${REGISTRY}`)
  location.searchParams.set('digest', digest)
  const put = await fetch(location, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream' } })
  if (put.status !== 201) throw new Error(`blob not stored: HTTP ${put.status} ${await put.text()}`)
  return { digest, size: body.length }
}

/** Stores `manifest` under `reference` (a tag); its digest. */
export async function putManifest(repository: string, reference: string, manifest: object, mediaType = OCI_MANIFEST): Promise<string> {
  const body = JSON.stringify(manifest)
  const put = await fetch(`http://${REGISTRY}/v2/${pathOf(repository)}/manifests/${reference}`, { method: 'PUT', body, headers: { 'content-type': mediaType } })
  if (put.status !== 201) throw new Error(`manifest not stored: HTTP ${put.status} ${await put.text()}`)
  return sha256(body)
}

/** A small artifact of its own (no image): a digest to sign in tests that run nothing. */
export async function pushArtifact(repository: string, tag: string): Promise<string> {
  const config = await pushBlob(repository, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: Math.random() }))
  return putManifest(repository, tag, { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [] })
}

/** cosign's simple-signing payload for `digest` of `repository`. */
export function cosignPayload(repository: string, digest: string): string {
  return JSON.stringify({
    critical: { identity: { 'docker-reference': repository }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
    optional: null,
  })
}

export interface SignOptions {
  /** The payload signed (default: cosign's for `repository` and `digest`). */
  payload?: string
  /** A signature of other bytes than the payload stored. */
  signedBytes?: string
}

/** Stores a cosign signature of `digest` by `key` under the `sha256-<hex>.sig` tag, as `cosign sign --key` does. */
export async function signImage(repository: string, digest: string, key: KeyObject, options: SignOptions = {}): Promise<void> {
  const payload = options.payload ?? cosignPayload(repository, digest)
  const signature = sign('sha256', Buffer.from(options.signedBytes ?? payload), key).toString('base64')
  const layer = await pushBlob(repository, payload)
  const config = await pushBlob(repository, JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} }))
  await putManifest(repository, `${digest.replace(':', '-')}.sig`, {
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', ...layer, annotations: { 'dev.cosignproject.cosign/signature': signature } }],
  })
}

/** An ECDSA P-256 key pair, as `cosign generate-key-pair` makes, its public key in a file of root's (`file`). */
export function testKeys(): { privateKey: KeyObject; file: string; dispose: () => void } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const dir = mkdtempSync(join(tmpdir(), 'cbatch-keys-'))
  const file = join(dir, 'cosign.pub')
  writeFileSync(file, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644 })
  return { privateKey, file, dispose: () => rmSync(dir, { recursive: true, force: true }) }
}

export interface BundleOptions {
  /** The statement's subject name (default: the repository). */
  name?: string
  /** The statement's subject digest (default: the image's). */
  subjectDigest?: string
  /** Sign other bytes than the envelope's. */
  signedBytes?: string
}

/** Attaches a sigstore bundle (v0.3, a DSSE envelope of an in-toto statement) signed by `key` to `digest`, as `cosign sign --new-bundle-format` does. */
export async function attachBundle(repository: string, digest: string, key: KeyObject, options: BundleOptions = {}): Promise<void> {
  const payloadType = 'application/vnd.in-toto+json'
  const payload = Buffer.from(JSON.stringify({
    _type: 'https://in-toto.io/Statement/v1', predicateType: 'https://sigstore.dev/cosign/sign/v1', predicate: {},
    subject: [{ name: options.name ?? repository, digest: { sha256: (options.subjectDigest ?? digest).replace(/^sha256:/, '') } }],
  }))
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${payloadType.length} ${payloadType} ${payload.length} `), payload])
  const sig = sign('sha256', options.signedBytes === undefined ? pae : Buffer.from(options.signedBytes), key).toString('base64')
  const bundle = {
    mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
    verificationMaterial: { publicKey: { hint: 'test-key' }, tlogEntries: [], timestampVerificationData: { rfc3161Timestamps: [] } },
    dsseEnvelope: { payload: payload.toString('base64'), payloadType, signatures: [{ sig, keyid: '' }] },
  }
  const BUNDLE = 'application/vnd.dev.sigstore.bundle.v0.3+json'
  const layer = await pushBlob(repository, JSON.stringify(bundle))
  const empty = await pushBlob(repository, '{}')
  const referrer = {
    schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: BUNDLE,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
    layers: [{ mediaType: BUNDLE, ...layer }],
    subject: { mediaType: OCI_MANIFEST, digest, size: 1 },
  }
  const referrerDigest = sha256(JSON.stringify(referrer))
  await putManifest(repository, referrerDigest, referrer)
  await putManifest(repository, digest.replace(':', '-'), {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: OCI_MANIFEST, digest: referrerDigest, size: JSON.stringify(referrer).length, artifactType: BUNDLE }],
  }, 'application/vnd.oci.image.index.v1+json')
}
