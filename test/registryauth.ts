import t from 'tap'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { registryAuth } from '../lib/host/registryauth.ts'

const auth = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64')

t.test('credentials per registry, in Docker\'s config.json format', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'auth.json')
  writeFileSync(file, JSON.stringify({ auths: {
    'reg.site.org': { auth: auth('alice', 'pa:ss') },
    'https://other.org:5000/': { username: 'bob', password: 'pw' },
    'https://index.docker.io/v1/': { auth: auth('hub', 'h') },
  } }), { mode: 0o600 })
  t.same(registryAuth(file, 'reg.site.org'), { username: 'alice', password: 'pa:ss', serveraddress: 'reg.site.org' })
  t.same(registryAuth(file, 'other.org:5000'), { username: 'bob', password: 'pw', serveraddress: 'other.org:5000' })
  t.same(registryAuth(file, 'docker.io')?.username, 'hub')
  t.equal(registryAuth(file, 'unknown.org'), undefined)
})

t.test('a file others may read is refused, and a broken one is reported without its content', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'auth.json')
  writeFileSync(file, JSON.stringify({ auths: { r: { auth: auth('a', 'secret') } } }))
  chmodSync(file, 0o644)
  t.throws(() => registryAuth(file, 'r'), { name: 'UnsafePathError', message: /others may read it/ })
  writeFileSync(file, '{"auths": {"r": {"auth": "secret-token"', { mode: 0o600 })
  chmodSync(file, 0o600)
  const err = t.throws(() => registryAuth(file, 'r'), { name: 'ConfigError' }) as unknown as Error
  t.notMatch(String(err?.message), 'secret-token')
})
