// bin/images.ts: `cbatch images pull` as cron runs it, against an engine that fails on cue.
import t from 'tap'
import { images } from '../bin/images.ts'
import type { Engine } from '../lib/engine/engine.ts'
import { ImageDeniedError, ImagePullError } from '../lib/errors.ts'
import { parseConfig } from '../lib/policy/parse.ts'

const CONFIG = `images: { pullAttempts: 1 }
queues:
  batch: { image: site/ok:1 }
  gpu: { image: site/down:1 }
  bio: { image: site/gone:1 }
  local: { image: site/handmade:1, pull: never }
`
/** An engine whose registry is down for site/down and has no site/gone; pulls are recorded. */
function fakeEngine(pulled: string[]): Engine {
  return {
    async pullImage(ref: string) {
      if (ref === 'site/down:1') throw new ImagePullError(`cannot pull image ${ref}`, 'connect ECONNREFUSED 127.0.0.1:5000')
      if (ref === 'site/gone:1') throw new ImageDeniedError(`the registry refused image ${ref} (it does not exist there, or not for these credentials)`, 'manifest unknown')
      pulled.push(ref)
    },
  } as unknown as Engine
}
const output = () => {
  const lines: string[] = []
  return { lines, out: { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream }
}

t.test('pull goes on past failures, says why each failed, skips pull: never and exits 1', async t => {
  const pulled: string[] = []
  const { lines, out } = output()
  const status = await images('pull', parseConfig(CONFIG), fakeEngine(pulled), { out })
  t.equal(status, 1, 'a failure shows in the exit status')
  t.same(pulled, ['site/ok:1'], 'the images after a failure are pulled too; pull: never is not')
  const text = lines.join('')
  t.match(text, 'site/handmade:1: skipped (its queues say pull: never)')
  t.match(text, 'site/down:1: FAILED: cannot pull image site/down:1: connect ECONNREFUSED 127.0.0.1:5000')
  t.match(text, 'site/gone:1: FAILED: the registry refused image site/gone:1 (it does not exist there, or not for these credentials): manifest unknown')
  t.match(text, 'site/ok:1: pulled')
  t.match(text, '2 of 3 images failed: site/down:1, site/gone:1')
})

t.test('pull exits 0 when every image pulled; an image one queue pulls is pulled though another never does', async t => {
  const pulled: string[] = []
  const { out } = output()
  const config = parseConfig('queues:\n  a: { image: site/ok:1 }\n  b: { image: site/ok:1, pull: never }\n')
  t.equal(await images('pull', config, fakeEngine(pulled), { out }), 0)
  t.same(pulled, ['site/ok:1'])
  t.equal(await images('pull', parseConfig(CONFIG), fakeEngine(pulled), { out, queue: 'batch' }), 0, '--queue pulls that queue\'s only')
})
