// Signed images only, end to end: images pushed to the provisioned registry (127.0.0.1:5000),
// signed as cosign signs them with keys made here, and jobs run through `cbatch run` on the
// real engine. A signed image runs (a cosign signature, or a sigstore bundle attached as an
// OCI referrer), and its accounting line names the signer; an unsigned or
// wrongly signed one is refused with the reason in the owner's .ER; a tag moved to an
// unsigned image while jobs start never runs the unsigned one.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { refused, runJob, sharedDir, TEST_IMAGE, writeConfig } from './helpers/jobs.ts'
import { attachBundle, freshRepository, signImage, testKeys } from './helpers/registry.ts'
import { ENGINE_SOCKET, engineCli, engineCliQuiet } from './helpers/engine.ts'

const shared = sharedDir()
const keys = testKeys()
const other = testKeys()
const repository = freshRepository('jobs')
const accounting = join(shared.path, 'accounting.jsonl')
const log = join(shared.path, 'cbatch.log')
t.teardown(() => {
  shared.dispose()
  keys.dispose()
  other.dispose()
  for (const tag of ['signed', 'unsigned', 'wrong', 'bundled']) {
    execFileSync('docker', ['rmi', '-f', `${repository}:${tag}`], { stdio: 'ignore' })
    engineCliQuiet(['rmi', '-f', `${repository}:${tag}`]) // what the tests' engine pulled (Podman: its own store)
  }
})

/** An image of the test image with /which saying `what`, pushed as `tag`; its digest. */
function pushImage(tag: string, what: string): string {
  const id = execFileSync('docker', ['create', '--network', 'none', TEST_IMAGE, 'true'], { encoding: 'utf8' }).trim()
  try {
    const file = join(shared.path, `which-${tag}`)
    writeFileSync(file, `${what}\n`, { mode: 0o644 })
    execFileSync('docker', ['cp', file, `${id}:/which`])
    execFileSync('docker', ['commit', id, `${repository}:${tag}`], { stdio: 'ignore' })
  } finally {
    execFileSync('docker', ['rm', '-f', id], { stdio: 'ignore' })
  }
  execFileSync('docker', ['push', '-q', `${repository}:${tag}`], { stdio: 'ignore' })
  const digests = JSON.parse(execFileSync('docker', ['inspect', '--format', '{{json .RepoDigests}}', `${repository}:${tag}`], { encoding: 'utf8' })) as string[]
  return digests.find(d => d.startsWith(`${repository}@`))!.split('@')[1]
}

const signed = pushImage('signed', 'signed')
const unsigned = pushImage('unsigned', 'unsigned')
const wrong = pushImage('wrong', 'wrong')
const bundled = pushImage('bundled', 'bundled')
await signImage(repository, signed, keys.privateKey)
await attachBundle(repository, bundled, keys.privateKey)
await signImage(repository, wrong, other.privateKey)

const config = writeConfig(shared.path, `engine: { requeuePause: 0 }
log: { file: ${log} }
accounting: { file: ${accounting} }
queues:
  signed:
    image: ${repository}:signed
    pull: missing
    allowedImages: ['${repository}:*']
    signatures: { required: true, keys: [${keys.file}] }
  fresh:
    image: ${repository}:signed
    pull: always
    signatures: { required: true, keys: [${keys.file}] }
`)

const recordOf = (jobId: string) => readFileSync(accounting, 'utf8').split('\n').filter(Boolean)
  .map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === jobId)
const logOf = (jobId: string) => readFileSync(log, 'utf8').split('\n').filter(l => l.includes(jobId)).join('\n')

t.test('a signed image runs by its verified digest; the accounting line names the signer', async t => {
  const { job } = await runJob('#!/bin/sh\ncat /which\n', { config, queue: 'signed' })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, /^signed$/m)
  const record = recordOf(job.jobId)
  const fingerprint = createHash('sha256').update(createPublicKey(readFileSync(keys.file)).export({ type: 'spki', format: 'der' })).digest('hex')
  t.equal(record?.signer, `cosign key sha256:${fingerprint} (${keys.file})`)
  t.equal(record?.image, `${repository}@${signed}`, 'the container was made from the digest, not the tag')
  t.equal(record?.imageDigest, `${repository}@${signed}`)
  t.match(logOf(job.jobId), `signed by cosign key sha256:`)
})

t.test('an image signed with a sigstore bundle attached as an OCI referrer runs; the accounting line names the bundle\'s key', async t => {
  const { job } = await runJob(`#!/bin/sh\n#CBATCH image=${repository}:bundled\ncat /which\n`, { config, queue: 'signed' })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, /^bundled$/m)
  const record = recordOf(job.jobId)
  t.match(record?.signer, new RegExp(`^sigstore bundle, key sha256:[0-9a-f]{64} \\(${keys.file}\\)$`))
  t.equal(record?.image, `${repository}@${bundled}`)
})

t.test('an unsigned image, and one signed by a key the queue does not trust, are refused with the reason in the .ER and the node log', async t => {
  for (const [tag, digest, reason] of [
    ['unsigned', unsigned, `is not signed (no cosign signature ${unsigned.replace(':', '-')}.sig nor sigstore bundle among its referrers in its registry)`],
    ['wrong', wrong, 'has no valid signature by a key this queue trusts'],
  ]) {
    const { job } = await runJob(`#!/bin/sh\n#CBATCH image=${repository}:${tag}\ncat /which\n`, { config, queue: 'signed' })
    t.ok(refused(job), `${tag}: refused, not requeued`, { job })
    t.match(job.stderr, `cbatch: image ${repository}@${digest} ${reason}`, tag)
    t.notMatch(job.stdout, tag, `${tag}: nothing of it ran`)
    t.match(logOf(job.jobId), /SignatureError/, `${tag}: said in the node log`)
  }
})

t.test('the tag moved to an unsigned image while jobs start: each runs the verified digest or is refused, never the unsigned image', async t => {
  // Both on the node's engine; then its tag flips between them, as fast as the engine lets it.
  for (const digest of [signed, unsigned]) engineCli(['pull', '-q', `${repository}@${digest}`])
  const tag = `docker -H unix://${ENGINE_SOCKET} tag`
  const flipper = spawn('sh', ['-c', `while :; do ${tag} ${repository}@${unsigned} ${repository}:signed; ${tag} ${repository}@${signed} ${repository}:signed; done`], { stdio: 'ignore' })
  t.teardown(() => {
    flipper.kill()
    engineCli(['tag', `${repository}@${signed}`, `${repository}:signed`])
  })
  const outcomes = { ran: 0, refused: 0 }
  for (let i = 0; i < 6; i++) {
    const { job } = await runJob('#!/bin/sh\ncat /which\n', { config, queue: 'signed' })
    t.notMatch(job.stdout, 'unsigned', `job ${i}: the unsigned image never runs`)
    if (job.exitStatus === 0) {
      t.match(job.stdout, /^signed$/m)
      t.equal(recordOf(job.jobId)?.image, `${repository}@${signed}`)
      outcomes.ran++
    } else {
      t.ok(refused(job), `job ${i}: refused`)
      t.match(job.stderr, `cbatch: image ${repository}@${unsigned} is not signed`)
      outcomes.refused++
    }
  }
  t.comment(`ran ${outcomes.ran}, refused ${outcomes.refused}`)
})

t.test('the registry\'s tag moved to an unsigned image: a queue that pulls always refuses it', async t => {
  execFileSync('docker', ['tag', `${repository}@${unsigned}`, `${repository}:signed`])
  execFileSync('docker', ['push', '-q', `${repository}:signed`], { stdio: 'ignore' })
  t.teardown(() => {
    execFileSync('docker', ['tag', `${repository}@${signed}`, `${repository}:signed`])
    execFileSync('docker', ['push', '-q', `${repository}:signed`], { stdio: 'ignore' })
  })
  const { job } = await runJob('#!/bin/sh\ncat /which\n', { config, queue: 'fresh' })
  t.ok(refused(job), job.stderr)
  t.match(job.stderr, `cbatch: image ${repository}@${unsigned} is not signed`)
  t.notMatch(job.stdout, 'unsigned')
})
