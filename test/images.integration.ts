// Pulls from real registries on loopback: the provisioned one (127.0.0.1:5000), a private
// one with basic auth (127.0.0.1:5001), and a registry that fails, then recovers (a TCP
// relay to the first that refuses connections for a while).
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { emulateJob } from '../emulator/emulator.ts'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { shortNames } from '../lib/node/imagecache.ts'
import { sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'
import { engineCli, engineCliQuiet, TEST_ENGINE } from './helpers/engine.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const PRIVATE = `127.0.0.1:5001/${TEST_IMAGE}`
const password = readFileSync('/var/lib/cbatch-test/private.pw', 'utf8').trim()
const accounting = join(shared.path, 'accounting.jsonl')
const log = join(shared.path, 'cbatch.log')

/** A credentials file of root's alone, in a directory only root may write to. */
function authFile(user: string, secret: string): string {
  const file = join('/var/lib/cbatch-test', `auth-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify({ auths: { '127.0.0.1:5001': { auth: Buffer.from(`${user}:${secret}`).toString('base64') } } }), { mode: 0o600 })
  t.teardown(() => execFileSync('rm', ['-f', file]))
  return file
}

/**
 * Why the tests' relays on loopback cannot be pulled from, if they cannot: Docker pulls over
 * plain http from any registry on 127.0.0.0/8, Podman only from those registries.conf says
 * are insecure (scripts/provision.sh names 127.0.0.1:5000 and :5001).
 */
function relaySkip(port: number): string | false {
  if (TEST_ENGINE === 'docker') return false
  const dir = '/etc/containers/registries.conf.d'
  const confs = readdirSync(dir).filter(f => f.endsWith('.conf')).map(f => readFileSync(join(dir, f), 'utf8')).join('\n')
  return confs.includes(`"127.0.0.1:${port}"`) ? false : `Podman pulls over plain http only from registries ${dir} says are insecure; 127.0.0.1:${port} is not one`
}

function run(image: string, images = '') {
  const config = writeConfig(shared.path, `engine: { requeuePause: 0, pullTimeout: 60 }
log: { file: ${log} }
accounting: { file: ${accounting} }
images: { pullAttempts: 3${images} }
queues:
  batch: { image: ${image}, pull: always }
`)
  const script = join(shared.path, 'job.sh')
  writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o644 })
  engineCliQuiet(['rmi', '-f', image])
  return emulateJob({ script, user: TEST_USER, queue: 'batch', resources: 'nodes=1', config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path })
}

t.test('a private registry with the right credentials: the job runs, and its image\'s digest is accounted', async t => {
  const job = await run(PRIVATE, `, auth: ${authFile('cbatch', password)}`)
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'ran')
  const line = readFileSync(accounting, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === job.jobId)
  t.match(line?.imageDigest, /^127\.0\.0\.1:5001\/cbatch-test\/busybox@sha256:[0-9a-f]{64}$/)
})

t.test('wrong or no credentials, or an image the registry lacks: refused with the reason, never requeued; no password anywhere', async t => {
  for (const [what, image, extra] of [
    ['wrong password', PRIVATE, `, auth: ${authFile('cbatch', 'not-the-password')}`],
    ['no credentials', PRIVATE, ''],
    ['no such image', '127.0.0.1:5000/cbatch-test/nothing:1', ''],
  ] as const) {
    const job = await run(image, extra)
    t.equal(job.prologue.status, 0, `${what}: not requeued`)
    t.equal(job.exitStatus, 125, what)
    t.match(job.stderr, `cbatch: the registry refused image ${image}`, what)
  }
  t.notMatch(readFileSync(log, 'utf8'), 'not-the-password', 'the node log never holds a password')
  t.notMatch(readFileSync(log, 'utf8'), password)
})

t.test('a registry that is down requeues the job after its tries; one that comes back is pulled from', { skip: relaySkip(5009) }, async t => {
  const down = await run('127.0.0.1:5009/cbatch-test/busybox:latest')
  t.equal(down.outcome, 'requeued')
  t.equal(down.prologue.status, 2)
  t.match(readFileSync(log, 'utf8'), /cannot pull image 127\.0\.0\.1:5009\/cbatch-test\/busybox:latest/)

  // Refuses every connection for its first 1.5 s, then relays to the registry on 5000.
  const opened = Date.now()
  const relay = createServer(client => {
    if (Date.now() - opened < 1500) {
      client.destroy()
      return
    }
    const upstream = createConnection(5000, '127.0.0.1')
    client.pipe(upstream).pipe(client)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>(r => relay.listen(5009, '127.0.0.1', r))
  t.teardown(() => relay.close())
  const back = await run('127.0.0.1:5009/cbatch-test/busybox:latest')
  t.equal(back.exitStatus, 0, back.stderr)
  t.match(back.stdout, 'ran', 'pulled on a later try')
})

/**
 * Engine pull events of `image` since `since` (seconds), as the engine counts pulls (Podman
 * gives its pull events no ID, and has one for a pull that failed too).
 */
function pullsSince(since: number, image: string): number {
  return engineCli(['events', '--since', String(since), '--until', String(Math.ceil(Date.now() / 1000) + 1),
    '--filter', 'type=image', '--filter', 'event=pull', '--filter', `image=${image}`, '--format', '{{.Action}}'])
    .split('\n').filter(Boolean).length
}

t.test('16 jobs starting at once for an image the node lacks make one pull', async t => {
  const image = `127.0.0.1:5000/${TEST_IMAGE}`
  const config = writeConfig(shared.path, `log: { file: ${log} }\nqueues:\n  batch: { image: ${image}, pull: missing }\n`)
  const script = join(shared.path, 'storm.sh')
  writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o644 })
  engineCliQuiet(['rmi', '-f', image])
  const since = Math.floor(Date.now() / 1000)
  const jobs = await Promise.all(Array.from({ length: 16 }, () => emulateJob({
    script, user: TEST_USER, queue: 'batch', resources: 'nodes=1', config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path,
  })))
  t.same(jobs.map(j => j.exitStatus), jobs.map(() => 0), jobs.map(j => j.stderr).join(''))
  t.equal(pullsSince(since, image), 1, 'one pull for all of them')
})

t.test('a pull that outlives the prologue\'s deadline goes on, and the requeued job finds the image', { skip: relaySkip(5010) }, async t => {
  // A registry behind a slow link (256 KiB/s), and an image whose 2 MiB only it has.
  const relay = createServer(client => {
    const upstream = createConnection(5000, '127.0.0.1')
    client.pipe(upstream)
    upstream.on('data', chunk => {
      client.write(chunk)
      upstream.pause()
      setTimeout(() => upstream.resume(), chunk.length / 256)
    })
    upstream.on('end', () => client.end())
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
  })
  await new Promise<void>(r => relay.listen(5010, '127.0.0.1', r))
  t.teardown(() => relay.close())
  const image = '127.0.0.1:5010/cbatch-test/big:1'
  // Its layers must not be on the node under any name.
  const forget = () => {
    const ids = [...new Set(engineCli(['images', '-q', '--filter', 'reference=*/cbatch-test/big']).split('\n').filter(Boolean))]
    if (ids.length) engineCliQuiet(['rmi', '-f', ...ids])
  }
  forget()
  t.teardown(forget)
  const config = writeConfig(shared.path, `engine: { pullTimeout: 2, requeuePause: 1 }\nlog: { file: ${log} }\nqueues:\n  batch: { image: ${image}, pull: missing }\n`)
  const script = join(shared.path, 'slow.sh')
  writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o644 })
  const since = Math.floor(Date.now() / 1000)
  const job = await emulateJob({
    script, user: TEST_USER, queue: 'batch', resources: 'nodes=1', config, attempts: 30,
    hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path,
  })
  t.equal(job.exitStatus, 0, job.stderr)
  t.ok(job.attempts! > 1, `requeued ${job.attempts! - 1} times while the pull went on`)
  t.equal(pullsSince(since, image), 1, 'one pull, across the requeues')
  t.match(readFileSync(log, 'utf8'), `"hook":"puller","pid":`)
  t.match(readFileSync(log, 'utf8'), `"message":"pulled image ${image}"`)
})

t.test('cbatch images: what a job last used and what the queues name; prune keeps both', async t => {
  const named = TEST_IMAGE
  const spare = `cbatch-test/spare:${process.pid}`
  engineCli(['tag', TEST_IMAGE, spare])
  t.teardown(() => engineCliQuiet(['rmi', spare]))
  const config = writeConfig(shared.path, `log: { file: ${log} }\nimages: { budget: 1b }\nqueues:\n  batch: { image: ${named}, pull: never }\n`)
  const script = join(shared.path, 'use.sh')
  writeFileSync(script, '#!/bin/sh\ntrue\n', { mode: 0o644 })
  const job = await emulateJob({ script, user: TEST_USER, queue: 'batch', resources: 'nodes=1', config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path })
  t.equal(job.exitStatus, 0)
  const cli = (...args: string[]) => execFileSync(join(import.meta.dirname, '../dist/cbatch'), ['images', ...args, '--config', config], { encoding: 'utf8' })
  const listed = JSON.parse(cli('--json')) as { references: string[]; queues: string[]; lastUse?: string }[]
  // Podman lists it by its full name, localhost/cbatch-test/busybox:latest: found by the queue's short one.
  const mine = listed.find(i => i.references.flatMap(shortNames).includes(named))!
  t.same(mine.queues, ['batch'])
  t.ok(Date.now() - Date.parse(mine.lastUse!) < 60_000, 'last used by the job just now')
  const dry = cli('prune', '--dry-run')
  const removal = (reference: string) => new RegExp(`^would remove (\\S+,)*${reference.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[, ]`, 'm')
  for (const reference of mine.references) t.notMatch(dry, removal(reference), `an image a queue names is never pruned (${reference})`)
  t.match(dry, /images: .* of a budget of 1 B \(the rest is in use or named by a queue\)/)
  t.ok(engineCli(['images', '-q', spare]).trim(), 'a dry run removes nothing')
})

t.test('cbatch images pull, as cron runs it: skips pull: never, goes on past an unreachable registry, says why, exits 1', async t => {
  const config = writeConfig(shared.path, `log: { file: ${log} }\nimages: { pullAttempts: 1 }\nqueues:
  down: { image: 127.0.0.1:5999/cbatch-test/unreachable:1 }
  up: { image: 127.0.0.1:5000/${TEST_IMAGE} }
  local: { image: cbatch-test/handmade:${process.pid}, pull: never }
`)
  const pull = spawnSync(join(import.meta.dirname, '../dist/cbatch'), ['images', 'pull', '--config', config], { encoding: 'utf8' })
  t.equal(pull.status, 1, pull.stderr)
  t.match(pull.stdout, `cbatch-test/handmade:${process.pid}: skipped (its queues say pull: never)`)
  t.match(pull.stdout, /^127\.0\.0\.1:5999\/cbatch-test\/unreachable:1: FAILED: cannot pull image 127\.0\.0\.1:5999\/cbatch-test\/unreachable:1: .*connect/m)
  t.match(pull.stdout, `127.0.0.1:5000/${TEST_IMAGE}: pulled`, 'the image after the failed one is pulled')
  t.match(pull.stdout, '1 of 2 images failed: 127.0.0.1:5999/cbatch-test/unreachable:1')
})
