// The verifier of cosign signatures (lib/job/signatures.ts) against the provisioned registry
// (127.0.0.1:5000), with keys made here; a registry that misbehaves (endless or malformed
// answers) is a small HTTP server of the test's own.
import t from 'tap'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { appendFileSync, chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RegistryClient } from '../lib/host/registry.ts'
import { canonicalRepository, imageSigner, loadTrust, SIGNATURE_LIMITS, verifiedImage } from '../lib/job/signatures.ts'
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

t.test('the trusted keys: root\'s files of PEM ECDSA keys; anything else refused', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'cbatch-keys-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = (name: string, text: string, mode = 0o644) => {
    writeFileSync(join(dir, name), text)
    chmodSync(join(dir, name), mode)
    return join(dir, name)
  }
  t.throws(() => loadTrust([file('open.pub', '', 0o666)]), { name: 'UnsafePathError', message: /others may write/ })
  t.throws(() => loadTrust([file('empty.pub', 'nothing')]), { name: 'ConfigError', message: /no PEM public key/ })
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string
  t.throws(() => loadTrust([file('rsa.pub', rsa)]), { name: 'ConfigError', message: /a rsa key; cbatch verifies ECDSA keys/ })
  const two = file('two.pub', '')
  appendFileSync(two, readPem(keys.file) + readPem(other.file))
  t.equal(loadTrust([two]).keys.length, 2, 'several keys in one file')
  t.not(loadTrust([two]).hash, loadTrust([keys.file]).hash, 'the trust hash changes with the keys')
})

function readPem(file: string): string {
  return loadTrust([file]).keys[0].key.export({ type: 'spki', format: 'pem' }) as string
}

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

t.test('a registry that sends too much, or not a manifest: refused without reading it all', async t => {
  const digest = `sha256:${'2'.repeat(64)}`
  let sent = 0
  const routes: Record<string, (res: ServerResponse) => void> = {
    endless: res => {
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })
      const chunk = Buffer.alloc(64 * 1024, 32)
      const more = () => {
        while (!res.destroyed && sent < 64 * 1024 ** 2 && res.write(chunk)) sent += chunk.length
        if (!res.destroyed && sent < 64 * 1024 ** 2) res.once('drain', more)
        else res.end()
      }
      more()
    },
    garbage: res => res.writeHead(200, { 'content-type': 'application/json' }).end('{"layers": 3'),
    bigblob: res => {
      // A manifest whose payload blob says it is small, and is not.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: `sha256:${'3'.repeat(64)}`, size: 10, annotations: { 'dev.cosignproject.cosign/signature': 'AA==' } }],
      }))
    },
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const [, , repo, kind] = req.url!.split('/')
    if (kind === 'blobs') res.writeHead(200, { 'content-length': String(SIGNATURE_LIMITS.payloadBytes + 1) }).end(Buffer.alloc(SIGNATURE_LIMITS.payloadBytes + 1))
    else routes[repo](res)
  })
  await new Promise<void>(r => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  const registry = `127.0.0.1:${(server.address() as AddressInfo).port}`
  const ask = (repo: string) => imageSigner(new RegistryClient(registry, undefined, 10_000), `${registry}/${repo}`, digest, trust())
  await t.rejects(ask('endless'), { name: 'SignatureError', message: /signature cannot be read.*longer than 4194304 bytes/ })
  t.ok(sent < 16 * 1024 ** 2, `the endless manifest was not read whole (${sent} bytes sent)`)
  await t.rejects(ask('garbage'), { name: 'SignatureError', message: /signature manifest sha256-2{64}\.sig is malformed/ })
  await t.rejects(ask('bigblob'), { name: 'SignatureError', message: /longer than 262144 bytes/ })
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

t.test('Docker Hub\'s names, as cosign writes them in payloads', async t => {
  t.equal(canonicalRepository('busybox'), 'index.docker.io/library/busybox')
  t.equal(canonicalRepository('docker.io/library/busybox'), 'index.docker.io/library/busybox')
  t.equal(canonicalRepository('index.docker.io/me/app'), 'index.docker.io/me/app')
  t.equal(canonicalRepository('127.0.0.1:5000/me/app'), '127.0.0.1:5000/me/app')
})
