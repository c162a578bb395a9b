import t from 'tap'
import { parseConfig } from '../lib/policy/schema.ts'
import { grantedImage, isImageReference } from '../lib/policy/image.ts'
import { parseDirectives } from '../lib/policy/jobrequest.ts'

const policy = parseConfig(`queues:
  q:
    image: site/base:1
    allowedImages: ['registry.site.org/hpc/*', 'site/pinned@sha256:${'a'.repeat(64)}']
    userMounts: [{ source: /data }, { source: /refdata, readOnly: true }]
`).queues.get('q')!

t.test('image references follow Docker\'s grammar', async t => {
  for (const ok of ['busybox', 'busybox:1.36', 'site/base:1', 'registry.site.org:5000/hpc/gromacs:2024.1',
    '127.0.0.1:5000/a/b', `x@sha256:${'0'.repeat(64)}`, 'a_b/c__d/e-f:tag']) t.ok(isImageReference(ok), ok)
  for (const bad of ['', 'Busybox', 'busybox;id', 'a b', '$(id)', '`id`', 'busybox:', 'busybox@sha256:12', '-x', 'a//b', 'x'.repeat(300)]) {
    t.notOk(isImageReference(bad), bad)
  }
})

t.test('directives: leading comment block only, strict values', async t => {
  t.same(parseDirectives('#!/bin/sh\n#PBS -l nodes=1\n#CBATCH image=registry.site.org/hpc/a:1\n\n#CBATCH mount=/data/p mount=/refdata/x:ro\necho\n#CBATCH image=late:1\n'),
    { image: 'registry.site.org/hpc/a:1', mounts: [{ path: '/data/p', readOnly: false }, { path: '/refdata/x', readOnly: true }] })
  t.same(parseDirectives('#!/bin/sh\necho hi\n'), { mounts: [] })
  t.throws(() => parseDirectives('#CBATCH image=a;b\n'), { name: 'PolicyError', message: /not an image reference/ })
  t.throws(() => parseDirectives('#CBATCH privileged\n'), { message: /unknown directive/ })
  t.throws(() => parseDirectives('#CBATCH mount=/a b\n'), { message: '#CBATCH b: unknown directive (known: image=REF, mount=/path[:ro])' })
  for (const bad of ['data', '/data/../etc', '/data/./x', '/data//x', '/data/', '/x;y', '/.ssh', '']) {
    t.throws(() => parseDirectives(`#CBATCH mount=${bad}\n`), { message: /plain absolute path/ }, bad)
  }
})

t.test('the queue decides the image', async t => {
  t.equal(grantedImage(policy, { mounts: [] }), 'site/base:1')
  t.equal(grantedImage(policy, { image: 'site/base:1', mounts: [] }), 'site/base:1')
  t.equal(grantedImage(policy, { image: 'registry.site.org/hpc/a:1', mounts: [] }), 'registry.site.org/hpc/a:1')
  t.equal(grantedImage(policy, { image: 'registry.site.org/hpc/a', mounts: [] }), 'registry.site.org/hpc/a:latest')
  t.equal(grantedImage(policy, { image: `site/pinned@sha256:${'a'.repeat(64)}`, mounts: [] }), `site/pinned@sha256:${'a'.repeat(64)}`)
  for (const denied of ['registry.site.org/hpc/sub/a:1', 'registry.site.org/other:1', 'site/pinned:1', `site/pinned@sha256:${'b'.repeat(64)}`]) {
    t.throws(() => grantedImage(policy, { image: denied, mounts: [] }), { name: 'PolicyError', message: /is not allowed in this queue; allowed: site\/base:1, registry/ }, denied)
  }
})

t.test('directive lines have a length cap', async t => {
  t.throws(() => parseDirectives(`#CBATCH mount=/data/${'x'.repeat(2000)}\n`), { name: 'PolicyError', message: /longer than 1024/ })
})

