import t from 'tap'
import { checkImageSource, ensureImage } from '../lib/policy/image.ts'
import { registryOf } from '../lib/host/registryauth.ts'
import { FakeEngine } from './helpers/fake-engine.ts'

const engine = (present: boolean) => {
  const e = new FakeEngine()
  if (present) e.images.add('a')
  return e
}

t.test('pull policy', async t => {
  const pulls = (e: FakeEngine) => (ref: string) => e.pullImage(ref)
  let e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }, pulls(e)), 'cached')
  t.same(e.calls, ['hasImage a'])
  e = engine(false)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }, pulls(e)), 'pulled')
  t.same(e.calls, ['hasImage a', 'pullImage a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'always' }, pulls(e)), 'pulled')
  t.same(e.calls, ['pullImage a'])
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
