// The verifier of cosign signatures (lib/job/signatures.ts) against the provisioned registries
// (127.0.0.1:5000; 127.0.0.1:5001 with basic auth), with keys made here. The parts that need no
// registry of the provisioning's are in test/signatures.ts.
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { RegistryClient } from '../lib/host/registry.ts'
import { imageSigner, loadTrust, SIGNATURE_LIMITS, verifiedImage } from '../lib/job/signatures.ts'
import { attachBundle, cosignPayload, freshRepository, pushArtifact, signImage, testKeys } from './helpers/registry.ts'

const keys = testKeys()
const other = testKeys()
t.teardown(() => {
  keys.dispose()
  other.dispose()
})
const repository = freshRepository('unit')
const client = () => new RegistryClient('127.0.0.1:5000', undefined, 10_000)
const trust = () => loadTrust([keys.file])

t.test('a digest signed by a trusted key for its repository: the signer is that key', async t => {
  const digest = await pushArtifact(repository, 'good')
  await signImage(repository, digest, keys.privateKey)
  const signer = await imageSigner(client(), repository, digest, trust())
  t.match(signer, new RegExp(`^cosign key sha256:[0-9a-f]{64} \\(${keys.file}\\)$`))
  t.equal(signer, await imageSigner(client(), repository, digest, loadTrust([other.file, keys.file])), 'any of several key files')
})

t.test('unsigned, badly signed, signed for another digest or repository, by another key, or a malformed payload: refused, saying why', async t => {
  const cases: [string, (digest: string) => Promise<void>, RegExp][] = [
    ['unsigned', async () => undefined, /is not signed \(no cosign signature sha256-[0-9a-f]{64}\.sig nor sigstore bundle among its referrers in its registry\)/],
    ['a signature of other bytes', d => signImage(repository, d, keys.privateKey, { signedBytes: 'something else' }), /signed by no trusted key/],
    ['another key', d => signImage(repository, d, other.privateKey), /signed by no trusted key/],
    ['another digest in the payload', d => signImage(repository, d, keys.privateKey, { payload: cosignPayload(repository, `sha256:${'0'.repeat(64)}`) }), /it signs digest "sha256:0{64}", not sha256:/],
    ['another repository in the payload', d => signImage(repository, d, keys.privateKey, { payload: cosignPayload('127.0.0.1:5000/elsewhere', d) }), /for repository "127\.0\.0\.1:5000\/elsewhere", not /],
    ['a payload that is not JSON', d => signImage(repository, d, keys.privateKey, { payload: 'not json' }), /its payload is not JSON/],
    ['a payload of another type', d => signImage(repository, d, keys.privateKey, { payload: JSON.stringify({ critical: { type: 'other' } }) }), /its payload is not a cosign container image signature/],
  ]
  for (const [what, sign, message] of cases) {
    const digest = await pushArtifact(repository, `case-${cases.findIndex(c => c[0] === what)}`)
    await sign(digest)
    await t.rejects(imageSigner(client(), repository, digest, trust()), { name: 'SignatureError', message }, what)
  }
})

t.test('sigstore bundles attached as OCI referrers (the referrers tag schema): verified offline against the keys', async t => {
  const digest = await pushArtifact(repository, 'bundled')
  await attachBundle(repository, digest, keys.privateKey)
  t.match(await imageSigner(client(), repository, digest, trust()), new RegExp(`^sigstore bundle, key sha256:[0-9a-f]{64} \\(${keys.file}\\)$`))
  const cases: [string, (digest: string) => Promise<void>, RegExp][] = [
    ['another key', d => attachBundle(repository, d, other.privateKey), /a bundle signed by no trusted key/],
    ['a signature of other bytes', d => attachBundle(repository, d, keys.privateKey, { signedBytes: 'other' }), /a bundle signed by no trusted key/],
    ['another digest in the statement', d => attachBundle(repository, d, keys.privateKey, { subjectDigest: `sha256:${'4'.repeat(64)}` }), /a bundle that signs "4{64}", not sha256:/],
    ['another repository in the statement', d => attachBundle(repository, d, keys.privateKey, { name: '127.0.0.1:5000/elsewhere' }), /for repository "127\.0\.0\.1:5000\/elsewhere"/],
  ]
  for (const [i, [what, attach, message]] of cases.entries()) {
    const d = await pushArtifact(repository, `bundle-case-${i}`)
    await attach(d)
    await t.rejects(imageSigner(client(), repository, d, trust()), { name: 'SignatureError', message }, what)
  }
  const both = await pushArtifact(repository, 'both')
  await signImage(repository, both, other.privateKey)
  await attachBundle(repository, both, keys.privateKey)
  t.match(await imageSigner(client(), repository, both, trust()), /^sigstore bundle, key/, 'a bad .sig does not hide a good bundle')
})

t.test('verified digests are cached per digest and keys, bounded; the container runs by the digest, not the tag', async t => {
  const cacheDir = join(mkdtempSync('/var/lib/cbatch-test/sigcache-'), 'signatures')
  t.teardown(() => rmSync(join(cacheDir, '..'), { recursive: true, force: true }))
  const digest = await pushArtifact(repository, 'cached')
  await signImage(repository, digest, keys.privateKey)
  const engine = { imageDigest: async () => `${repository}@${digest}` }
  const check = { keys: [keys.file], timeoutMs: 10_000, cacheDir, cacheEntries: 2 }
  const first = await verifiedImage(engine, `${repository}:cached`, check)
  t.same(first, { reference: `${repository}@${digest}`, digest, signer: first.signer })
  // The registry's signature replaced by a bad one: the verdict kept for these keys holds.
  await signImage(repository, digest, other.privateKey)
  t.same(await verifiedImage(engine, `${repository}:cached`, check), first, 'a second job costs no registry check')
  const again = await verifiedImage(engine, `${repository}:cached`, { ...check, keys: [keys.file, other.file] })
  t.match(again.signer, `(${other.file})`, 'other keys: checked again, and the registry\'s signature now is the other key\'s')
  for (const tag of ['c1', 'c2']) {
    const d = await pushArtifact(repository, tag)
    await signImage(repository, d, keys.privateKey)
    await verifiedImage({ imageDigest: async () => `${repository}@${d}` }, `${repository}:${tag}`, check)
  }
  t.equal(readdirSync(cacheDir).length, 2, 'at most cacheEntries verdicts')
})

t.test('an image with no digest of its own repository on the node cannot be checked', async t => {
  const cacheDir = join(mkdtempSync('/var/lib/cbatch-test/sigcache-'), 'signatures')
  t.teardown(() => rmSync(join(cacheDir, '..'), { recursive: true, force: true }))
  const check = { keys: [keys.file], timeoutMs: 10_000, cacheDir }
  for (const found of [undefined, `127.0.0.1:5000/elsewhere@sha256:${'1'.repeat(64)}`]) {
    await t.rejects(verifiedImage({ imageDigest: async () => found }, `${repository}:x`, check),
      { name: 'SignatureError', message: /has no digest from its registry 127\.0\.0\.1:5000 on this node/ }, String(found))
  }
})

t.test('a registry that wants credentials (127.0.0.1:5001, basic auth): images.auth\'s are sent, none is refused', async t => {
  const password = readFileSync('/var/lib/cbatch-test/private.pw', 'utf8').trim()
  const image = '127.0.0.1:5001/cbatch-test/busybox'
  const anonymous = new RegistryClient('127.0.0.1:5001', undefined, 10_000)
  await t.rejects(anonymous.manifest(image, 'latest', SIGNATURE_LIMITS.manifestBytes), { name: 'ImageDeniedError', message: /wants credentials for .* images\.auth has none/ })
  const wrong = new RegistryClient('127.0.0.1:5001', { username: 'cbatch', password: 'not-it', serveraddress: '127.0.0.1:5001' }, 10_000)
  await t.rejects(wrong.manifest(image, 'latest', SIGNATURE_LIMITS.manifestBytes), { name: 'ImageDeniedError', message: /refused access .* \(HTTP 401\)/ })
  const authed = new RegistryClient('127.0.0.1:5001', { username: 'cbatch', password, serveraddress: '127.0.0.1:5001' }, 10_000)
  const manifest = await authed.manifest(image, 'latest', SIGNATURE_LIMITS.manifestBytes)
  t.ok(manifest?.body.length, 'the manifest, with the credentials')
  const digest = `sha256:${createHash('sha256').update(manifest!.body).digest('hex')}`
  await t.rejects(imageSigner(authed, image, digest, trust()), { name: 'SignatureError', message: /is not signed/ }, 'the signature looked for with them')
})

