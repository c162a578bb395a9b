// A mother superior's streak of requeues: different jobs of different owners counted, ended by
// a success, reported while recent, in a public line that names no job; and which failures count.
import t from 'tap'
import { chmodSync, chownSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { clearRequeues, recordRequeue, requeueProblem, requeuesFile, STREAK } from '../lib/node/requeues.ts'
import { countsAgainstNode, NODE_HOST, prepareJob, type Attempt } from '../lib/job/prologue.ts'
import { ContainerRefusedError, EngineError, EngineTimeoutError, ImagePullError, JobImagePullError, PolicyError, PullUnderWayError } from '../lib/errors.ts'
import { parseConfig } from '../lib/policy/parse.ts'
import type { ContainerSpec } from '../lib/engine/engine.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { PROLOGUE, TEST_USER } from './helpers/jobs.ts'
import { jobContext } from '../lib/torque/job.ts'

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s))
const later = (d: Date, ms: number) => new Date(d.getTime() + ms)
const logger = () => {
  const lines: string[] = []
  return { lines, info: (m: string) => void lines.push(`info ${m}`), error: (m: string) => void lines.push(`error ${m}`) }
}
const requeue = (job: string, owner: string, reason = `Docker engine error (ping the engine): job ${job} of ${owner}`) => ({ job, owner, reason })
const entries = (momPriv: string) => (JSON.parse(readFileSync(requeuesFile(momPriv), 'utf8')) as { requeues: { job: string; owner: string }[] }).requeues

t.test('three different jobs of two owners make a problem until a success or until it has aged', async t => {
  const momPriv = t.testdir()
  const log = logger()
  recordRequeue(momPriv, requeue('1.srv', 'alice'), { now: at(0), log })
  recordRequeue(momPriv, requeue('2.srv', 'bob'), { now: at(20), log })
  t.equal(requeueProblem(momPriv, { now: at(21) }), undefined, 'two are not yet a streak')
  recordRequeue(momPriv, requeue('3.srv', 'alice', 'cannot pull image x'), { now: at(40), log })
  const problem = requeueProblem(momPriv, { now: at(41) })
  t.equal(problem, 'the prologue requeued 3 jobs of 2 owners within 5 min for a fault of this node; see this node\'s cbatch log')
  t.notMatch(problem, /srv|alice|bob|pull|engine/, 'the public line names no job, owner or failure')
  t.match(log.lines.at(-1), /^info requeue of job 3\.srv \(owner alice\) counted against this node: 3 jobs of 2 owners/, 'the node log has them')
  t.equal(statSync(requeuesFile(momPriv)).mode & 0o777, 0o600)
  t.ok(requeueProblem(momPriv, { now: later(at(40), STREAK.holdMs) }), 'it speaks for holdMs after the last')
  t.equal(requeueProblem(momPriv, { now: later(at(40), STREAK.holdMs + 1000) }), undefined, 'a node that is down ends no streak: it ages')
  clearRequeues(momPriv)
  t.equal(requeueProblem(momPriv, { now: at(42) }), undefined, 'a job that got its container ends it')
  recordRequeue(momPriv, requeue('4.srv', 'carol'), { now: at(50) })
  t.equal(requeueProblem(momPriv, { now: at(51) }), undefined, 'and the count starts over')
})

t.test('one job requeued again and again is one job', async t => {
  const momPriv = t.testdir()
  for (let i = 0; i < 20; i++) recordRequeue(momPriv, requeue('7.srv', 'mallory'), { now: at(i * 10) })
  t.equal(requeueProblem(momPriv, { now: at(200) }), undefined)
  t.same(entries(momPriv).map(e => e.job), ['7.srv'], 'kept once, at its last requeue')
})

t.test('any number of one owner\'s jobs never take the node out of scheduling; a second owner\'s does', async t => {
  const momPriv = t.testdir()
  for (let i = 0; i < 10; i++) recordRequeue(momPriv, requeue(`${i}.srv`, 'mallory'), { now: at(i) })
  t.equal(requeueProblem(momPriv, { now: at(10) }), undefined, 'ten jobs of one owner')
  t.equal(entries(momPriv).length, STREAK.perOwner, 'of which the file keeps the newest few')
  recordRequeue(momPriv, requeue('10.srv', 'bob'), { now: at(11) })
  t.equal(requeueProblem(momPriv, { now: at(12) }), 'the prologue requeued 4 jobs of 2 owners within 5 min for a fault of this node; see this node\'s cbatch log')
})

t.test('a streak whose last requeue is older than holdMs starts over', async t => {
  const momPriv = t.testdir()
  recordRequeue(momPriv, requeue('1.srv', 'alice'), { now: at(0) })
  recordRequeue(momPriv, requeue('2.srv', 'bob'), { now: at(10) })
  const next = later(at(10), STREAK.holdMs + 1000)
  recordRequeue(momPriv, requeue('3.srv', 'carol'), { now: next })
  t.equal(requeueProblem(momPriv, { now: next }), undefined, 'old requeues do not add up with a new one')
  t.same(entries(momPriv).map(e => e.job), ['3.srv'], 'and are dropped from the file')
  // Only requeues within holdMs of each other make a streak: the oldest drops out as they come.
  recordRequeue(momPriv, requeue('4.srv', 'alice'), { now: later(next, STREAK.holdMs - 1000) })
  recordRequeue(momPriv, requeue('5.srv', 'bob'), { now: later(next, STREAK.holdMs + 1000) })
  t.same(entries(momPriv).map(e => e.job), ['4.srv', '5.srv'])
  t.equal(requeueProblem(momPriv, { now: later(next, STREAK.holdMs + 2000) }), undefined)
})

t.test('the file stays small, whatever comes', async t => {
  const momPriv = t.testdir()
  for (let i = 0; i < 200; i++) recordRequeue(momPriv, requeue(`${i}.${'x'.repeat(1000)}`, `user${i % 40}`, 'r'.repeat(10_000)), { now: at(i) })
  t.equal(entries(momPriv).length, STREAK.kept)
  t.ok(statSync(requeuesFile(momPriv)).size < 16 * 1024, `${statSync(requeuesFile(momPriv)).size} bytes`)
  t.ok(requeueProblem(momPriv, { now: at(200) }))
})

t.test('a streak file that is not what root wrote is no streak, and is logged', async t => {
  const momPriv = t.testdir()
  const file = requeuesFile(momPriv)
  const full = () => {
    clearRequeues(momPriv)
    for (const [i, owner] of ['alice', 'bob', 'carol'].entries()) recordRequeue(momPriv, requeue(`${i}.srv`, owner), { now: at(i) })
  }
  const judged = (prepare: () => void) => {
    full()
    prepare()
    const log = logger()
    return { problem: requeueProblem(momPriv, { now: at(3), log }), log: log.lines }
  }
  full()
  t.ok(requeueProblem(momPriv, { now: at(3) }), 'as written')
  t.match(judged(() => writeFileSync(file, '{"requeues": [')), { problem: undefined, log: [/^error requeue streak .* is not in the format cbatch writes: treated as empty$/] })
  t.match(judged(() => writeFileSync(file, JSON.stringify({ count: 9, since: at(0), last: at(2), reason: 'x' }))), { problem: undefined, log: [/not in the format/] }, 'the older format too')
  t.match(judged(() => chmodSync(file, 0o622)), { problem: undefined, log: [/is writable by others/] })
  if (process.geteuid?.() === 0) t.match(judged(() => chownSync(file, 1001, 1001)), { problem: undefined, log: [/is not root's own/] })
  t.match(judged(() => writeFileSync(file, ' '.repeat(70_000))), { problem: undefined, log: [/bigger than/] })
  t.match(judged(() => {
    writeFileSync(join(momPriv, 'elsewhere.json'), readFileSync(file))
    clearRequeues(momPriv)
    symlinkSync(join(momPriv, 'elsewhere.json'), file)
  }), { problem: undefined, log: [/cannot be read \(ELOOP\)/] }, 'never through a link')
  t.match(judged(() => writeFileSync(file, JSON.stringify({ requeues: [{ job: 1 }, null, 'x'] }))), { problem: undefined, log: [] }, 'entries not as written are left out')
  // A corrupt file is replaced by the next requeue.
  writeFileSync(file, 'garbage')
  recordRequeue(momPriv, requeue('9.srv', 'dave'), { now: at(4) })
  t.same(entries(momPriv).map(e => e.job), ['9.srv'])
})

t.test('what counts against the node: its faults, never what a job chose or could bring about', async t => {
  const engineDown = new EngineError('Docker engine error (list containers)', 'connect ENOENT')
  t.ok(countsAgainstNode(engineDown), 'an engine that fails')
  t.ok(countsAgainstNode(new EngineTimeoutError('Docker engine error (pull)')), 'or is too slow')
  t.ok(countsAgainstNode(new ImagePullError('cannot pull image queue:1')), 'the queue\'s own image not pulled')
  t.ok(countsAgainstNode(new Error('internal')), 'an internal error')
  t.notOk(countsAgainstNode(new PolicyError('refused')), 'a refusal is not requeued')
  t.notOk(countsAgainstNode(new ContainerRefusedError('refused by the engine')))
  t.notOk(countsAgainstNode(new PullUnderWayError('image x is still being pulled on this node')), 'a big image on its way')
  t.notOk(countsAgainstNode(new JobImagePullError('cannot pull image mine:1')), 'the registry of an image the job chose')
  t.notOk(countsAgainstNode(engineDown, { chosenImage: true }), 'anything in an image the job chose')
  t.notOk(countsAgainstNode(engineDown, { runWithOwnerPaths: true }), 'the engine failing to make a container with the owner\'s paths bound')
})

t.test('the prologue says what it had come to: a run with the owner\'s paths, or an engine failing before', async t => {
  const config = parseConfig('queues:\n  batch: { image: img:1, pull: missing }\n')
  const facts = (jobId: string) => jobContext({ jobId, user: TEST_USER, group: '', jobName: 'j', resources: 'nodes=1:ppn=1', queue: 'batch', account: '' }, {})
  // The owner swapped a bound path and back while the engine mounted it: the engine fails, assertUnchanged sees nothing.
  class RaceLost extends FakeEngine {
    override async run(spec: ContainerSpec): Promise<string> {
      this.calls.push(`run ${spec.name}`)
      throw new EngineError('Docker engine error (create container)', 'invalid mount config for type "bind": bind source path does not exist')
    }
  }
  const raced = new RaceLost()
  raced.images.add('img:1')
  const attempt: Attempt = {}
  const err = await prepareJob(facts('11.srv'), config, raced, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: raced.proveBinds }, attempt }).catch(e => e as unknown)
  t.match(err, { name: 'EngineError' })
  t.same(attempt, { chosenImage: false, runWithOwnerPaths: true }, 'the home directory is bound')
  t.notOk(countsAgainstNode(err, attempt), 'so it does not count')
  class Down extends FakeEngine {
    override async imagePlatform(): Promise<undefined> {
      throw new EngineError('Docker engine error (inspect image)', 'connect ENOENT')
    }
  }
  const down = new Down()
  const before: Attempt = {}
  const failed = await prepareJob(facts('12.srv'), config, down, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: down.proveBinds }, attempt: before }).catch(e => e as unknown)
  t.same(before, { chosenImage: false }, 'it failed before any container was made')
  t.ok(countsAgainstNode(failed, before), 'an engine that fails the queue\'s image counts')
})
