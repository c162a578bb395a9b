import t from 'tap'
import { ImageReference } from '../lib/policy/reference.ts'

const digest = `sha256:${'a'.repeat(64)}`

t.test('image references follow Docker\'s grammar', async t => {
  for (const ok of ['busybox', 'busybox:1.36', 'site/base:1', 'registry.site.org:5000/hpc/gromacs:2024.1',
    '127.0.0.1:5000/a/b', `x@sha256:${'0'.repeat(64)}`, 'a_b/c__d/e-f:tag']) t.ok(ImageReference.isValid(ok), ok)
  for (const bad of ['', 'Busybox', 'busybox;id', 'a b', '$(id)', '`id`', 'busybox:', 'busybox@sha256:12', '-x', 'a//b', 'x'.repeat(300)]) {
    t.notOk(ImageReference.isValid(bad), bad)
    t.throws(() => ImageReference.parse(bad, '#CBATCH image'), { name: 'PolicyError', message: `#CBATCH image=${JSON.stringify(bad)} is not an image reference` })
  }
  t.equal(ImageReference.parse('site/base:1', 'x').text, 'site/base:1')
})

t.test('its parts: registry, repository, tag, digest', async t => {
  t.same(['busybox', 'site/app:1', 'reg.site.org/app', 'reg:5000/app', 'localhost/app'].map(r => ImageReference.of(r).registry),
    ['docker.io', 'docker.io', 'reg.site.org', 'reg:5000', 'localhost'])
  t.match(ImageReference.of('reg:5000/hpc/app:2.1'), { repository: 'reg:5000/hpc/app', tag: '2.1', digest: undefined })
  t.match(ImageReference.of('reg:5000/app'), { repository: 'reg:5000/app', tag: undefined }, 'a port is not a tag')
  t.match(ImageReference.of(`site/app:1@${digest}`), { repository: 'site/app', tag: '1', digest })
})

t.test('completed as the engine completes it; pinned only by a sha256 digest', async t => {
  t.equal(ImageReference.of('busybox').completed, 'busybox:latest')
  t.equal(ImageReference.of('reg:5000/app').completed, 'reg:5000/app:latest')
  t.equal(ImageReference.of('busybox:1').completed, 'busybox:1')
  t.equal(ImageReference.of(`busybox@${digest}`).completed, `busybox@${digest}`)
  t.ok(ImageReference.of(`site/app@${digest}`).pinned)
  t.notOk(ImageReference.of('site/app:1').pinned)
  t.notOk(ImageReference.of(`site/app@sha512:${'a'.repeat(128)}`).pinned)
})
