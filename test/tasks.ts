// Places of a job's starters on a node: counted over live processes only, never more than allowed.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { claimTaskPlace } from '../lib/node/tasks.ts'
import { startTimeOf } from '../lib/host/proc.ts'

async function process_(t: Test): Promise<ChildProcess> {
  const child = spawn('sleep', ['30'])
  t.teardown(() => { child.kill() })
  await new Promise(r => child.once('spawn', r))
  return child
}
const entry = (pid: number) => `${pid}-${startTimeOf(pid)}`

t.test('a job gets at most max starters; dead and reused entries do not count', async t => {
  const dir = t.testdir()
  const release = claimTaskPlace('1.node', '/mom_priv', 2, dir)
  const [jobDir] = readdirSync(dir)
  t.equal(statSync(join(dir, jobDir)).mode & 0o777, 0o700)
  t.same(readdirSync(join(dir, jobDir)), [entry(process.pid)])
  release()
  t.same(readdirSync(dir), [], 'the last one out removes the job\'s directory')

  // Two live starters of the job hold both places.
  const others = [await process_(t), await process_(t)]
  mkdirSync(join(dir, jobDir), { mode: 0o700 })
  for (const other of others) writeFileSync(join(dir, jobDir, entry(other.pid!)), '1.node')
  t.throws(() => claimTaskPlace('1.node', '/mom_priv', 2, dir), { name: 'PolicyError', message: /job 1.node already runs 2 tasks on this node, the most its queue allows \(maxTasks 2\)/ })
  t.equal(readdirSync(join(dir, jobDir)).length, 2, 'the refused one left no entry')
  // The same job on another mom of this host counts apart.
  claimTaskPlace('1.node', '/other/mom_priv', 2, dir)()
  // A killed starter frees its place; so does an entry whose pid now is another process.
  others[0].kill()
  await new Promise(r => others[0].once('exit', r))
  writeFileSync(join(dir, jobDir, `${others[1].pid}-1`), '1.node')
  const again = claimTaskPlace('1.node', '/mom_priv', 3, dir)
  t.same(readdirSync(join(dir, jobDir)).sort(), [entry(process.pid), entry(others[1].pid!)].sort(), 'stale entries are gone')
  again()
})

t.test('the directory must be root\'s alone', async t => {
  const dir = t.testdir({ tasks: {} })
  chmodSync(join(dir, 'tasks'), 0o777)
  t.throws(() => claimTaskPlace('1.node', '/mom_priv', 2, join(dir, 'tasks')), { name: 'UnsafePathError' })
})
