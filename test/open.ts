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

t.test('engine.kind podman: Podman\'s adapter, with its own cgroup names and messages', async t => {
  const id = 'a'.repeat(64)
  const socket = join(t.testdir(), 'podman.sock')
  const podman = openEngine({ kind: 'podman', socket, timeout: 5, pullTimeout: 5 })
  t.same(podman.cgroupNames(id), [`libpod-${id}`, `libpod-${id}.scope`])
  t.same(podman.cgroupNames('aaaa'), [], 'none for a short id')
  await t.rejects(podman.ping(), { name: 'EngineError', message: 'Podman engine error (ping the engine)' })
  await t.rejects(podman.updateLimits(id, { memoryBytes: 64 * 1024 ** 2 }), { name: 'EngineError', message: `Podman engine error (update container ${id})` })
  const docker = openEngine({ socket, timeout: 5, pullTimeout: 5 })
  t.same(docker.cgroupNames(id), [id, `docker-${id}.scope`], 'docker, unless said')
})
