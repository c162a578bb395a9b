import t from 'tap'
import { ensureImage } from '../lib/policy/image.ts'

// A stand-in for the engine: this is pure policy logic.
const engine = (present: boolean) => {
  const calls: string[] = []
  return {
    calls,
    hasImage: async (ref: string) => { calls.push(`has ${ref}`); return present },
    pullImage: async (ref: string) => { calls.push(`pull ${ref}`) },
  }
}

t.test('pull policy', async t => {
  let e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }), 'cached')
  t.same(e.calls, ['has a'])
  e = engine(false)
  t.equal(await ensureImage(e, { image: 'a', pull: 'missing' }), 'pulled')
  t.same(e.calls, ['has a', 'pull a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'always' }), 'pulled')
  t.same(e.calls, ['pull a'])
  e = engine(true)
  t.equal(await ensureImage(e, { image: 'a', pull: 'never' }), 'cached')
  await t.rejects(ensureImage(engine(false), { image: 'a', pull: 'never' }), { name: 'ImageMissingError', message: /pull policy is "never"/ })
})
