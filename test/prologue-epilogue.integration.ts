// The job's life in the prologue and epilogue, against the in-memory engine: what is asked
// of the engine, in which order, and what is refused before anything is made.
import t from 'tap'
import { parseConfig } from '../lib/policy/parse.ts'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { containerName } from '../lib/job/container.ts'
import { LABEL } from '../lib/engine/labels.ts'
import { dockerCreateOptions } from '../lib/engine/docker.ts'
import { NODE_HOST, prepareJob } from '../lib/job/prologue.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { PROLOGUE, TEST_USER } from './helpers/jobs.ts'
import { jobContext } from '../lib/torque/job.ts'

const config = parseConfig('queues:\n  batch: { image: img:1, pull: missing }\n')
const facts = (jobId: string, queue = 'batch', user = TEST_USER, resources = 'nodes=1:ppn=1,mem=1gb,cput=60') =>
  jobContext({ jobId, user, group: '', jobName: 'j', resources, queue, account: '' }, {})

t.test('the prologue pulls what is missing, replaces an earlier run\'s container, and starts one confined', async t => {
  const engine = new FakeEngine()
  const first = await prepareJob(facts('1.srv'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  t.match(first, { kind: 'container', image: 'img:1', imageSource: 'pulled', replaced: false })
  t.same(engine.calls.slice(0, 2), ['imagePlatform img:1', 'pullImage img:1'])
  const again = await prepareJob(facts('1.srv'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  t.match(again, { kind: 'container', imageSource: 'cached', replaced: true }, 'a requeued job gets a fresh container')
  t.equal(engine.containers.size, 1)
  const [container] = engine.containers.values()
  t.match(dockerCreateOptions(container.spec), { User: '65534:65534', HostConfig: { CapDrop: ['ALL'], Privileged: false, Memory: 1024 ** 3 } })
  t.match(container.labels, { 'cbatch.job': '1.srv', 'cbatch.user': TEST_USER, 'cbatch.cput': '60' })
})

t.test('nothing is made for a job the policy refuses, and unmanaged queues are left alone', async t => {
  const engine = new FakeEngine()
  await t.rejects(prepareJob(facts('2.srv', 'batch', 'root'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } }), { name: 'PolicyError', message: /root is refused/ })
  t.throws(() => facts('3.srv', 'batch', TEST_USER, 'mem=0b'), { name: 'UsageError', message: /mem=0b/ }, 'refused as the hook reads its arguments')
  t.notOk(engine.calls.some(c => c.startsWith('run ')), 'no container')
  t.same(await prepareJob(facts('4.srv', 'elsewhere'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } }), { kind: 'native' })
})

t.test('the epilogue accounts for a container before it removes it; no container, no record', async t => {
  const engine = new FakeEngine()
  await prepareJob(facts('5.srv'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  const [id] = engine.containers.keys()
  const cleaned = await cleanupJob({ jobId: '5.srv', user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine, () => new Date(Date.now() + 2000))
  t.match(cleaned?.record, { jobId: '5.srv', user: TEST_USER, queue: 'batch', image: 'img:1', exitStatus: 0, oomKilled: false })
  t.ok(cleaned!.record.wallSeconds >= 1.9)
  t.ok(cleaned!.record.usage, 'usage read from its cgroup while it ran')
  t.equal(engine.calls.at(-1), `remove ${id}`)
  t.equal(await cleanupJob({ jobId: '5.srv', user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine), undefined)
})

t.test('a queue\'s runtime: a job runs under it when the engine has it, is refused before anything is pulled or made when not; the record says which ran it', async t => {
  const gvisor = parseConfig('queues:\n  untrusted: { image: img:1, pull: missing, runtime: runsc }\n')
  const engine = new FakeEngine()
  await t.rejects(prepareJob(facts('7.srv', 'untrusted'), gvisor, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } }), {
    name: 'RuntimeMissingError', message: 'queue untrusted runs its jobs under the container runtime runsc, which this node\'s engine does not have (it has runc); tell the node\'s admin',
  })
  t.same(engine.calls, ['runtimes'], 'nothing pulled, looked up or made')
  engine.runtimeNames = ['runc', 'runsc']
  await prepareJob(facts('7.srv', 'untrusted'), gvisor, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  const [container] = engine.containers.values()
  t.equal(container.spec.runtime, 'runsc')
  const cleaned = await cleanupJob({ jobId: '7.srv', user: TEST_USER, queue: 'untrusted', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine)
  t.equal(cleaned?.record.runtime, 'runsc')
  await prepareJob(facts('8.srv'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  const cleanedDefault = await cleanupJob({ jobId: '8.srv', user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine)
  t.equal(cleanedDefault?.record.runtime, 'runc', 'a queue without one: the engine\'s default, by its name')
})

t.test('the epilogue believes a scratch label only if it names the job\'s own directory in its queue\'s configured base', async t => {
  const engine = new FakeEngine()
  const scratchBase = '/var/tmp/cbatch-scratch'
  const name = containerName('6.srv', PROLOGUE.batch.stateDir)
  const epilogue = async (labels: Record<string, string>, base: string | null = scratchBase) => {
    await prepareJob(facts('6.srv'), config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
    const [container] = engine.containers.values()
    Object.assign(container.labels, labels) // as if they had come from the image
    return cleanupJob({ jobId: '6.srv', user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir, scratchBase: base ?? undefined }, engine)
  }
  t.equal((await epilogue({ [LABEL.scratch]: `${scratchBase}/${name}` }))?.scratchDir, `${scratchBase}/${name}`, 'the one the prologue makes')
  for (const planted of ['/etc', `/etc/${name}`, `${scratchBase}/other`, `${scratchBase}/../${name}`, `${scratchBase}/sub/${name}`, `${scratchBase}/${name}/..`, '']) {
    t.equal((await epilogue({ [LABEL.scratch]: planted }))?.scratchDir, undefined, `not ${planted || 'empty'}`)
  }
  t.equal((await epilogue({ [LABEL.scratch]: `${scratchBase}/${name}` }, null))?.scratchDir, undefined, 'none when the queue has no scratch')
  const record = (await epilogue({ [LABEL.gpus]: '', [LABEL.node]: '', [LABEL.user]: '', [LABEL.queue]: '' }))!.record
  t.match(record, { user: TEST_USER, queue: 'batch', nodeNumber: 0 }, 'empty labels read as absent')
  t.notOk('gpus' in record)
})
