// The verifier of cosign signatures (lib/job/signatures.ts) without a registry of the
// provisioning's: the trusted keys, a registry that misbehaves (endless or malformed answers:
// a small HTTP server of the test's own), Docker Hub's names. Against the provisioned
// registries: test/signatures-registry.integration.ts.
import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { appendFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RegistryClient } from '../lib/host/registry.ts'
import { canonicalRepository, imageSigner, loadTrust, SIGNATURE_LIMITS } from '../lib/job/signatures.ts'
import { testKeys } from './helpers/registry.ts'

const keys = testKeys()
const other = testKeys()
t.teardown(() => {
  keys.dispose()
  other.dispose()
})
const trust = () => loadTrust([keys.file])

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

t.test('Docker Hub\'s names, as cosign writes them in payloads', async t => {
  t.equal(canonicalRepository('busybox'), 'index.docker.io/library/busybox')
  t.equal(canonicalRepository('docker.io/library/busybox'), 'index.docker.io/library/busybox')
  t.equal(canonicalRepository('index.docker.io/me/app'), 'index.docker.io/me/app')
  t.equal(canonicalRepository('127.0.0.1:5000/me/app'), '127.0.0.1:5000/me/app')
})
