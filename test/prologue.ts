// The prologue's orchestration (lib/job/prologue.ts), on a node and an engine that are fakes
// (test/helpers/fake-host.ts, fake-engine.ts): what it asks of each, in which order, what
// it leaves when it refuses or fails. What the real node and engine do is the integration
// tests' (lifecycle, prologue-epilogue, security).
import t, { type Test } from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { prepareJob } from '../lib/job/prologue.ts'
import { LABEL } from '../lib/engine/labels.ts'
import { parseConfig } from '../lib/policy/parse.ts'
import type { JobContext } from '../lib/torque/job.ts'
import { pbsMom } from '../lib/torque/mom.ts'
import { parseRequest } from '../lib/torque/request.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { fakeHost, OWNER } from './helpers/fake-host.ts'

const config = parseConfig('queues:\n  batch: { image: img:1, pull: never }\n')
const job = (jobId: string, queue = 'batch'): JobContext => ({
  jobId, user: OWNER.name, group: '', jobName: 'j', resources: 'nodes=1:ppn=2,mem=1gb', queue, account: '',
  request: parseRequest('nodes=1:ppn=2,mem=1gb'), share: { nodes: 1, number: 0, ppnHere: 2, npTotal: 2 }, gpus: [],
})
function setup(t: Test) {
  const engine = new FakeEngine()
  engine.images.add('img:1')
  const host = fakeHost(engine)
  const batch = pbsMom(join(t.testdir({ mom_priv: { jobs: {} } }), 'mom_priv'))
  return { engine, host, batch, accounts: () => readdirSync(join(batch.stateDir, 'cbatch-accounts')) }
}

t.test('a queue cbatch does not manage: nothing asked of the engine or the node', async t => {
  const { engine, host, batch } = setup(t)
  t.same(await prepareJob(job('1.srv', 'native'), config, engine, { batch, host }), { kind: 'native' })
  t.same(engine.calls, [])
  t.same(host.calls, [])
})

t.test('the container: its queue\'s image, as its owner, this mom\'s, with the owner\'s account files; a requeued try replaces it', async t => {
  const { engine, host, batch, accounts } = setup(t)
  const first = await prepareJob(job('2.srv'), config, engine, { batch, host })
  t.match(first, { kind: 'container', image: 'img:1', replaced: false })
  const made = (await engine.inspect(first.kind === 'container' ? first.id : ''))!
  t.equal(made.user, '65534:65534', 'the holder runs as nobody; the job shell as its owner')
  t.match(made.labels, { [LABEL.job]: '2.srv', [LABEL.mom]: batch.stateDir, [LABEL.uid]: '1001', [LABEL.user]: 'alice' })
  t.same(accounts().length, 1, 'its passwd and group, in the mom\'s state directory')
  t.same(host.imagesUsed, ['img:1'], 'the image is recorded as used')
  t.notOk(engine.calls.some(c => c.startsWith('pullImage')), 'pull: never')

  const again = await prepareJob(job('2.srv'), config, engine, { batch, host })
  t.match(again, { kind: 'container', replaced: true })
  t.ok(engine.calls.includes(`remove ${first.kind === 'container' ? first.id : ''}`), 'the earlier try\'s container is removed first')
  t.equal((await engine.findByLabel(LABEL.job)).length, 1)
})

t.test('an owner who may not run refuses the job before any container is made', async t => {
  const { engine, batch } = setup(t)
  const host = fakeHost(engine, { lookupUser: async () => ({ ...OWNER, name: 'root', uid: 0, gid: 0, groups: [0] }) })
  await t.rejects(prepareJob(job('3.srv'), config, engine, { batch, host }), { name: 'PolicyError' })
  t.notOk(engine.calls.some(c => c.startsWith('run ')))
  t.notOk(host.calls.includes('planMounts'), 'none of the owner\'s paths looked at')
  t.notOk(existsSync(join(batch.stateDir, 'cbatch-accounts')), 'no account files made')
})

t.test('binds that cannot be proven: the container is removed, its account files too', async t => {
  const { engine, batch, accounts } = setup(t)
  const host = fakeHost(engine, {
    proveBinds: () => {
      throw new Error('a bind shows another object')
    },
  })
  await t.rejects(prepareJob(job('4.srv'), config, engine, { batch, host }), { message: 'a bind shows another object' })
  t.same(await engine.findByLabel(LABEL.job), [], 'no container left')
  t.same(accounts(), [], 'no account files left')
})

t.test('an image its queue does not have and may not pull refuses the job, naming it', async t => {
  const { engine, host, batch } = setup(t)
  engine.images.delete('img:1')
  await t.rejects(prepareJob(job('5.srv'), config, engine, { batch, host }), { name: 'ImageMissingError', message: /img:1/ })
  t.notOk(engine.calls.some(c => c.startsWith('run ')))
})
