import t from 'tap'
import { chownSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openEngine } from '../lib/engine/open.ts'
import { EngineError, UnsafePathError } from '../lib/errors.ts'

t.test('an engine behind a socket that is not there is down, not refused: its calls fail as engine faults', async t => {
  const calls: string[] = []
  const engine = openEngine({ socket: join(t.testdir(), 'docker.sock'), timeout: 5, pullTimeout: 5 }, (what, _ms, ok) => calls.push(`${what} ${ok}`))
  await t.rejects(engine.ping(), EngineError)
  await t.rejects(engine.listImages(), EngineError, 'the image store is the same engine')
  t.same(calls, ['ping the engine false', 'list images false'], 'the observer hears of every call')
})

t.test('a socket someone else could have put there is never believed', { skip: process.getuid?.() !== 0 && 'needs root' }, async t => {
  const socket = join(t.testdir(), 'docker.sock')
  writeFileSync(socket, '')
  chownSync(socket, 65534, 65534)
  t.throws(() => openEngine({ socket, timeout: 5, pullTimeout: 5 }), UnsafePathError)
})
