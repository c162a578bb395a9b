import t from 'tap'
import { parseConfig } from '../lib/policy/parse.ts'
import { grantedImage } from '../lib/policy/image.ts'
import { MAX_DIRECTIVE_LINES, MAX_MOUNTS, parseDirectives } from '../lib/policy/jobrequest.ts'

const policy = parseConfig(`queues:
  q:
    image: site/base:1
    allowedImages: ['registry.site.org/hpc/*', 'site/pinned@sha256:${'a'.repeat(64)}']
    userMounts: [{ source: /data }, { source: /refdata, readOnly: true }]
`).queues.get('q')!

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


t.test('what a job asks for is bounded: mounts per queue, #CBATCH lines, before anything is looked at on the host', async t => {
  t.equal(policy.maxMounts, 32, 'a sensible default')
  const mounts = (n: number, perLine = 1) => Array.from({ length: Math.ceil(n / perLine) }, (_, l) =>
    `#CBATCH ${Array.from({ length: Math.min(perLine, n - l * perLine) }, (_, i) => `mount=/data/d${l * perLine + i}`).join(' ')}\n`).join('')
  t.equal(parseDirectives(mounts(32), policy.maxMounts).mounts.length, 32)
  const over = /^the job asks for more than 32 mounts \(#CBATCH mount=\); its queue allows at most 32$/
  t.throws(() => parseDirectives(mounts(33), policy.maxMounts), { name: 'PolicyError', message: over })
  // The finding: 59 KiB of mount= lines naming 1400 directories, many to a line.
  t.throws(() => parseDirectives(mounts(1400, 20), policy.maxMounts), { name: 'PolicyError', message: over })
  t.throws(() => parseDirectives('#CBATCH mount=/data/a\n', 0), { message: /more than 0 mounts/ }, 'a queue may allow none')
  t.throws(() => parseDirectives(mounts(MAX_MOUNTS + 1, 8)), { message: new RegExp(`more than ${MAX_MOUNTS} mounts`) }, 'the hard cap without a queue')
  const lines = '#CBATCH image=site/base:1\n'.repeat(MAX_DIRECTIVE_LINES)
  t.same(parseDirectives(lines), { image: 'site/base:1', mounts: [] })
  t.throws(() => parseDirectives(`${lines}#CBATCH image=site/base:1\n`), { name: 'PolicyError', message: `the job script has more than ${MAX_DIRECTIVE_LINES} #CBATCH lines` })
  const queue = (n: number) => `queues:\n  q: { image: a, maxMounts: ${n} }\n`
  t.equal(parseConfig(queue(MAX_MOUNTS)).queues.get('q')!.maxMounts, MAX_MOUNTS)
  t.throws(() => parseConfig(queue(MAX_MOUNTS + 1)), { name: 'ConfigError', message: /maxMounts/ }, 'no queue may lift the hard cap')
  t.throws(() => parseConfig(queue(-1)), { name: 'ConfigError' })
})
