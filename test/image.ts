import t from 'tap'
import { checkImageSource, ensureImage } from '../lib/policy/image.ts'
import { ImageDeniedError, ImagePullError, EngineTimeoutError } from '../lib/errors.ts'
import { registryOf } from '../lib/host/registryauth.ts'
import { FakeEngine } from './helpers/fake-engine.ts'

const engine = (present: boolean) => {
  const e = new FakeEngine()
  if (present) e.images.add('a')
  return e
}
const noPause = { attempts: 3, timeoutMs: 60_000, pause: async () => undefined }

t.test('pull policy', async t => {
  let e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }), 'cached')
  t.same(e.calls, ['hasImage a'])
  e = engine(false)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }), 'pulled')
  t.same(e.calls, ['hasImage a', 'pullImage a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'always' }), 'pulled')
  t.same(e.calls, ['pullImage a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'never' }), 'cached')
  await t.rejects(ensureImage(engine(false), { image: 'a', pull: 'never' }), { name: 'ImageMissingError', message: /pull policy is "never"/ })
})

t.test('a registry that is down is tried again with pauses; one that refuses the image is not', async t => {
  const e = engine(false)
  e.pullFailures = [new ImagePullError('cannot pull image a', 'connection refused'), new ImagePullError('cannot pull image a', 'connection refused')]
  const pauses: number[] = []
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }, { ...noPause, pause: async n => { pauses.push(n) } }), 'pulled')
  t.same(pauses, [2, 3], 'before the second and third tries')
  const down = engine(false)
  down.pullFailures = [1, 2, 3].map(() => new ImagePullError('cannot pull image a', 'connection refused'))
  await t.rejects(ensureImage(down, { image: 'a', pull: 'missing' }, noPause), { name: 'ImagePullError' }, 'then the job is requeued')
  t.equal(down.calls.filter(c => c.startsWith('pullImage')).length, 3)
  for (const failure of [new ImageDeniedError('the registry refused image a'), new EngineTimeoutError('pull image a took too long')]) {
    const e2 = engine(false)
    e2.pullFailures = [failure]
    await t.rejects(ensureImage(e2, { image: 'a', pull: 'missing' }, noPause), { name: failure.name })
    t.equal(e2.calls.filter(c => c.startsWith('pullImage')).length, 1, `${failure.name}: no second try`)
  }
})

t.test('the registry\'s credentials go with the pull', async t => {
  const e = engine(false)
  await ensureImage(e, { image: 'a', pull: 'missing' }, { ...noPause, auth: () => ({ username: 'u', password: 'p', serveraddress: 'r' }) })
  t.same(e.calls, ['hasImage a', 'pullImage a as u'])
})

t.test('an image built for another platform is refused', async t => {
  const e = engine(true)
  e.platform = { os: 'linux', architecture: 'riscv64' }
  await t.rejects(ensureImage(e, { image: 'a', pull: 'missing' }), { name: 'PolicyError', message: /built for linux\/riscv64; this node is linux\// })
})

t.test('where images come from: the queue\'s registries, digests only if pinned', async t => {
  const digest = `@sha256:${'a'.repeat(64)}`
  t.same(['busybox', 'site/app:1', 'reg.site.org/app', 'reg:5000/app', 'localhost/app'].map(registryOf),
    ['docker.io', 'docker.io', 'reg.site.org', 'reg:5000', 'localhost'])
  const policy = { registries: ['reg.site.org'], pinned: true }
  t.doesNotThrow(() => checkImageSource(policy, `reg.site.org/app${digest}`))
  t.throws(() => checkImageSource(policy, `busybox${digest}`), { name: 'PolicyError', message: /not from a registry this queue allows \(reg.site.org\)/ })
  t.throws(() => checkImageSource(policy, 'reg.site.org/app:1'), { message: /not pinned/ })
  t.doesNotThrow(() => checkImageSource({ registries: [], pinned: false }, 'anything:1'))
})
