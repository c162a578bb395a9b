// A mother superior's streak of requeues: counted, ended by a success, reported while recent.
import t from 'tap'
import { statSync } from 'node:fs'
import { clearRequeues, recordRequeue, requeueProblem, requeuesFile, STREAK } from '../lib/node/requeues.ts'

t.test('three requeues in a row make a problem until a success or until it has aged', async t => {
  const momPriv = t.testdir()
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s))
  recordRequeue(momPriv, 'Docker engine error (ping the engine)', at(0))
  recordRequeue(momPriv, 'Docker engine error (ping the engine)', at(20))
  t.equal(requeueProblem(momPriv, at(21)), undefined, 'two are not yet a streak')
  recordRequeue(momPriv, 'cannot pull image x', at(40))
  t.equal(requeueProblem(momPriv, at(41)), 'the prologue requeued the last 3 jobs since 2026-01-01T00:00:00.000Z: cannot pull image x')
  t.equal(statSync(requeuesFile(momPriv)).mode & 0o777, 0o600)
  t.equal(requeueProblem(momPriv, new Date(at(40).getTime() + STREAK.holdMs + 1000)), undefined, 'a node that is down ends no streak: it ages')
  clearRequeues(momPriv)
  t.equal(requeueProblem(momPriv, at(42)), undefined, 'a job that got its container ends it')
  recordRequeue(momPriv, 'again', at(50))
  t.equal(requeueProblem(momPriv, at(51)), undefined, 'and the count starts over')
})
