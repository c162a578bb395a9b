// Places of a job's starters on a node: counted over live processes only, never more than allowed.
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { claimTaskPlace, collectTaskPlaces, taskLimit } from '../lib/node/tasks.ts'
import { runningJob } from '../lib/torque/job.ts'
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

t.test('a planted directory or link is refused before anything is made through it', async t => {
  const dir = t.testdir({ planted: {}, elsewhere: {} })
  chownSync(join(dir, 'planted'), 65534, 65534)
  t.throws(() => claimTaskPlace('1.node', '/mom_priv', 2, join(dir, 'planted')), { name: 'UnsafePathError', message: /not owned by root/ })
  t.same(readdirSync(join(dir, 'planted')), [], 'nothing made in it')
  symlinkSync(join(dir, 'elsewhere'), join(dir, 'link'))
  lchownSync(join(dir, 'link'), 65534, 65534)
  t.throws(() => claimTaskPlace('1.node', '/mom_priv', 2, join(dir, 'link', 'tasks')), { name: 'UnsafePathError' })
  t.notOk(existsSync(join(dir, 'elsewhere/tasks')), 'nothing made where the link leads')
})

t.test('a job may always hold a starter per processor it has on the node, and its job shell', async t => {
  const job = (resources: string, execHost?: string) =>
    runningJob({ jobId: '1.node', queue: 'batch', user: 'alice', uid: 1001, group: 'alice', gid: 1001, cookie: 'C', resources, ...(execHost ? { execHost } : {}) })
  const big = job('nodes=2:ppn=80', 'big1/0-79+big2/0-79')
  t.same(taskLimit(64, big, 0), { max: 81, why: 'maxTasks 64, raised to its 80 processors here and its job shell' })
  t.same(taskLimit(100, big, 1), { max: 100, why: 'maxTasks 100' }, 'the queue\'s own, where more')
  // This node's share, from the exec_host pbs_mom saved, not the largest.
  const uneven = job('nodes=1:ppn=80+1:ppn=2', 'big/0-79+small/0-1')
  t.equal(taskLimit(64, uneven, 0).max, 81)
  t.equal(taskLimit(64, uneven, 1).max, 64)
  t.equal(taskLimit(2, uneven, 1).max, 3)
  t.equal(taskLimit(64, uneven, undefined).max, 81, 'no node number: the largest share, which this node\'s cannot exceed')
  t.equal(taskLimit(64, uneven, 7).max, 81, 'a node the exec_host does not have: the same')
  t.equal(taskLimit(64, job('nodes=1:ppn=128')).max, 129, 'no exec_host yet: the node spec')
  t.equal(taskLimit(64, job('walltime=10')).max, 64)

  // The refusal says which limit it was.
  const dir = t.testdir()
  const jobDir = join(dir, createHash('sha256').update('/mom_priv\x001.node').digest('hex').slice(0, 32))
  mkdirSync(jobDir, { mode: 0o700 })
  const other = await process_(t)
  writeFileSync(join(jobDir, entry(other.pid!)), '1.node')
  t.throws(() => claimTaskPlace('1.node', '/mom_priv', { max: 1, why: 'the reason' }, dir), { name: 'PolicyError', message: /already runs 1 tasks on this node, the most its queue allows \(the reason\)$/ })
})

t.test('what killed starters left is collected; live starters keep their places', async t => {
  const dir = join(t.testdir(), 'tasks')
  collectTaskPlaces(dir)
  t.notOk(existsSync(dir), 'none yet: nothing made')
  const held = claimTaskPlace('1.node', '/mom_priv', 4, dir)
  const [live] = readdirSync(dir)
  const other = await process_(t)
  const dead = entry(other.pid!)
  other.kill()
  await new Promise(r => other.once('exit', r))
  // A starter of an ended job, killed before it let go.
  mkdirSync(join(dir, 'ended'), { mode: 0o700 })
  writeFileSync(join(dir, 'ended', dead), '2.node')
  writeFileSync(join(dir, live, dead), '1.node')
  collectTaskPlaces(dir)
  t.same(readdirSync(dir), [live], 'the ended job\'s directory is gone')
  t.same(readdirSync(join(dir, live)), [entry(process.pid)], 'the live job keeps its live starter\'s place')
  held()
  t.same(readdirSync(dir), [])
})
