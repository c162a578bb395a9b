import t from 'tap'
import { checkImageSource } from '../lib/policy/image.ts'

t.test('where images come from: the queue\'s registries, digests only if pinned', async t => {
  const digest = `@sha256:${'a'.repeat(64)}`
  const policy = { registries: ['reg.site.org'], pinned: true }
  t.doesNotThrow(() => checkImageSource(policy, `reg.site.org/app${digest}`))
  t.throws(() => checkImageSource(policy, `busybox${digest}`), { name: 'PolicyError', message: /not from a registry this queue allows \(reg.site.org\)/ })
  t.throws(() => checkImageSource(policy, 'reg.site.org/app:1'), { message: /not pinned/ })
  t.doesNotThrow(() => checkImageSource({ registries: [], pinned: false }, 'anything:1'))
})
