import t from 'tap'
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { claimPull, ensureImage, pullRecord, pullWithRetries, waitForImage } from '../lib/job/pull.ts'
import { EngineTimeoutError, ImageDeniedError, ImagePullError } from '../lib/errors.ts'
import { FakeEngine } from './helpers/fake-engine.ts'

const noPause = { attempts: 3, timeoutMs: 60_000, pause: async () => undefined }
const down = () => new ImagePullError('cannot pull image a', 'connection refused')

t.test('a registry that is down is tried again with pauses; one that refuses the image is not', async t => {
  const e = new FakeEngine()
  e.pullFailures = [down(), down()]
  const pauses: number[] = []
  await pullWithRetries(e, 'a', { ...noPause, pause: async n => { pauses.push(n) } })
  t.ok(e.images.has('a'))
  t.same(pauses, [2, 3], 'before the second and third tries')
  const still = new FakeEngine()
  still.pullFailures = [down(), down(), down()]
  await t.rejects(pullWithRetries(still, 'a', noPause), { name: 'ImagePullError' }, 'then the job is requeued')
  t.equal(still.calls.length, 3)
  for (const failure of [new ImageDeniedError('the registry refused image a'), new EngineTimeoutError('pull image a took too long')]) {
    const e2 = new FakeEngine()
    e2.pullFailures = [failure]
    await t.rejects(pullWithRetries(e2, 'a', noPause), { name: failure.name })
    t.equal(e2.calls.length, 1, `${failure.name}: no second try`)
  }
})

t.test('the registry\'s credentials go with the pull', async t => {
  const e = new FakeEngine()
  await pullWithRetries(e, 'a', { ...noPause, auth: () => ({ username: 'u', password: 'p', serveraddress: 'r' }) })
  t.same(e.calls, ['pullImage a as u'])
})

t.test('one claim per image on a node; a dead puller\'s claim is taken over', async t => {
  const dir = join(t.testdir({}), 'pulls')
  t.ok(claimPull('img:1', dir), 'the first claims it')
  t.notOk(claimPull('img:1', dir), 'a second waits: just claimed, its puller not yet started')
  t.ok(claimPull('img:2', dir), 'another image is another claim')
  pullRecord.started('img:1', dir)
  t.notOk(claimPull('img:1', dir), 'the puller is alive')
  const [claim] = readdirSync(dir).filter(d => existsSync(join(dir, d, 'pid')))
  // A pid that cannot be alive.
  writeFileSync(join(dir, claim, 'pid'), '2147483646')
  t.ok(claimPull('img:1', dir), 'its puller died: taken over')
  const stale = readdirSync(dir).find(d => d !== claim && !d.includes('.'))!
  utimesSync(join(dir, stale), new Date(0), new Date(0))
  t.ok(claimPull('img:2', dir), 'a claim never started for 30 s is stale')
})

t.test('waiting for a pull: the image, a refusal (abort), a failure or the deadline (requeue)', async t => {
  const dir = join(t.testdir({}), 'pulls')
  const e = new FakeEngine()
  claimPull('a', dir)
  setTimeout(() => { e.images.add('a'); pullRecord.ended('a', undefined, dir) }, 50)
  await waitForImage(e, 'a', 5000, { pullsDir: dir, pollMs: 10 })
  t.pass('the image came')
  claimPull('b', dir)
  pullRecord.ended('b', { refused: true, message: 'manifest unknown' }, dir)
  await t.rejects(waitForImage(e, 'b', 5000, { pullsDir: dir, pollMs: 10 }), { name: 'ImageDeniedError', message: /manifest unknown/ })
  claimPull('c', dir)
  pullRecord.ended('c', { refused: false, message: 'connection refused' }, dir)
  await t.rejects(waitForImage(e, 'c', 5000, { pullsDir: dir, pollMs: 10 }), { name: 'ImagePullError', message: /connection refused/ })
  claimPull('d', dir)
  await t.rejects(waitForImage(e, 'd', 50, { pullsDir: dir, pollMs: 10 }), { name: 'PullUnderWayError', message: /still being pulled on this node/ })
  e.images.add('d')
  await t.rejects(waitForImage(e, 'd', 50, { fresh: true, pullsDir: dir, pollMs: 10 }), { message: /still being pulled/ },
    'pull policy always: the image there is not enough while its pull goes on')
  pullRecord.ended('d', undefined, dir)
  await waitForImage(e, 'd', 50, { fresh: true, pullsDir: dir, pollMs: 10 })
  t.ok(claimPull('b', dir), 'a new pull of a refused image may start')
  await t.rejects(waitForImage(e, 'b', 50, { pullsDir: dir, pollMs: 10 }), { message: /still being pulled/ }, 'and the old refusal no longer counts')
})

const engine = (present: boolean) => {
  const e = new FakeEngine()
  if (present) e.images.add('a')
  return e
}

t.test('pull policy', async t => {
  const pulls = (e: FakeEngine) => (ref: string) => e.pullImage(ref)
  let e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }, pulls(e)), 'cached')
  t.same(e.calls, ['imagePlatform a'], 'one look at an image that is there')
  e = engine(false)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }, pulls(e)), 'pulled')
  t.same(e.calls, ['imagePlatform a', 'pullImage a', 'imagePlatform a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'always' }, pulls(e)), 'pulled')
  t.same(e.calls, ['pullImage a', 'imagePlatform a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'never' }, pulls(e)), 'cached')
  e = engine(false)
  await t.rejects(ensureImage(e, { image: 'a', pull: 'never' }, pulls(e)), { name: 'ImageMissingError', message: /pull policy is "never"/ })
})

t.test('an image built for another platform is refused', async t => {
  const e = engine(true)
  e.platform = { os: 'linux', architecture: 'riscv64' }
  await t.rejects(ensureImage(e, { image: 'a', pull: 'missing' }, async () => undefined), { name: 'PolicyError', message: /built for linux\/riscv64; this node is linux\// })
})
