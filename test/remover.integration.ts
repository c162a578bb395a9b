// The epilogue kills the job's processes from the host and leaves its container's removal to
// a detached remover (hooks/remover.ts): here with real processes in a cgroup of their own
// (cgroup v1 pids, as root). A requeued try that waits for that removal: test/remover-requeue.ts.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, rmdirSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { killContainerInit } from '../lib/host/proc.ts'
import { containerName } from '../lib/job/container.ts'
import { LABEL } from '../lib/engine/labels.ts'
import type { ContainerSpec } from '../lib/engine/engine.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { PROLOGUE, TEST_USER } from './helpers/jobs.ts'

/** A process in a cgroup of its own (cgroup v1 pids), as a container's init is in the container's. */
function containerLike(t: Test): { child: ChildProcess; cgroup: string } {
  const cgroup = `cbatch-test-${randomBytes(6).toString('hex')}`
  const dir = `/sys/fs/cgroup/pids/${cgroup}`
  mkdirSync(dir)
  const child = spawn('sleep', ['60'], { stdio: 'ignore' })
  writeFileSync(`${dir}/cgroup.procs`, String(child.pid))
  const exited = once(child, 'exit')
  t.teardown(async () => {
    child.kill('SIGKILL')
    await exited
    rmdirSync(dir)
  })
  return { child, cgroup }
}

t.test('killContainerInit kills only a process of the named cgroup, and says when it has exited', async t => {
  const { child, cgroup } = containerLike(t)
  const exit = once(child, 'exit')
  t.equal(await killContainerInit(child.pid!, ['some-other-container']), false, 'a pid not in the container is never signalled')
  t.equal(child.exitCode, null)
  t.equal(child.signalCode, null)
  t.equal(await killContainerInit(child.pid!, [cgroup]), true)
  t.same((await exit)[1], 'SIGKILL')
  t.equal(await killContainerInit(0, [cgroup]), false, 'no pid: a container not running')
})

const facts = (jobId: string) => ({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir })
/** What a job's container has of its spec that the epilogue reads: its name and labels. */
const spec = (jobId: string) => ({ name: containerName(jobId, PROLOGUE.batch.stateDir), image: 'img:1', labels: { [LABEL.job]: jobId, [LABEL.mom]: PROLOGUE.batch.stateDir } }) as unknown as ContainerSpec

t.test('the epilogue hands the removal over once the job\'s processes are killed, and removes it itself when they cannot be', async t => {
  const { child, cgroup } = containerLike(t)
  const engine = new FakeEngine()
  engine.cgroupNames = () => [cgroup]
  engine.pid = child.pid!
  const id = await engine.run(spec('7.srv'))
  const handed: string[] = []
  const exit = once(child, 'exit')
  const cleaned = await cleanupJob({ ...facts('7.srv'), removeLater: c => handed.push(c) }, engine)
  t.ok(cleaned?.record, 'accounted for')
  t.same(handed, [id], 'the remover takes the container over')
  t.notOk(engine.calls.includes(`remove ${id}`), 'the epilogue does not wait for the engine\'s removal')
  t.same((await exit)[1], 'SIGKILL', 'no process of the job outlives the epilogue')

  // A pid that is not the container's (here: this test's own): the engine removes it, now.
  const other = new FakeEngine()
  const otherId = await other.run(spec('8.srv'))
  const none: string[] = []
  await cleanupJob({ ...facts('8.srv'), removeLater: c => none.push(c) }, other)
  t.same(none, [])
  t.ok(other.calls.includes(`remove ${otherId}`))
})
