// The container's life through the library, against the real engine and registry.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { parseConfig } from '../lib/policy/parse.ts'
import { DockerEngine } from '../lib/engine/docker.ts'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { prepareJob } from '../lib/job/prologue.ts'
import { containersOf, PROLOGUE, REGISTRY_IMAGE, TEST_IMAGE, TEST_USER } from './helpers/jobs.ts'
import { engineCli, testEngine, withTestEngine } from './helpers/engine.ts'
import { jobContext } from '../lib/torque/job.ts'

const engine = testEngine()
const facts = (jobId: string, queue = 'batch') =>
  jobContext({ jobId, user: TEST_USER, group: '', jobName: 'j', resources: 'nodes=1:ppn=1', queue, account: '' }, {})
const ended = (jobId: string) => ({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir })
const config = parseConfig(withTestEngine(`queues:
  batch: { image: ${TEST_IMAGE}, pull: never }
  pulled: { image: ${REGISTRY_IMAGE}, pull: always }
`))

t.test('a requeued job whose old container still exists gets a fresh one', async t => {
  const jobId = `${process.pid}1.requeue`
  t.teardown(() => cleanupJob(ended(jobId), engine))
  const first = await prepareJob(facts(jobId), config, engine, PROLOGUE)
  const second = await prepareJob(facts(jobId), config, engine, PROLOGUE)
  t.equal(first.kind, 'container')
  t.equal(second.kind === 'container' && second.replaced, true)
  t.same(containersOf(jobId).map(id => second.kind === 'container' && second.id.startsWith(id)), [true])
  const cleaned = await cleanupJob(ended(jobId), engine)
  t.ok(cleaned?.record.usage, 'a running container is accounted from its cgroup')
  t.same(containersOf(jobId), [])
})

t.test('the epilogue removes a container whatever its state', async t => {
  const jobId = `${process.pid}2.states`
  t.teardown(() => cleanupJob(ended(jobId), engine))
  const prepared = await prepareJob(facts(jobId), config, engine, PROLOGUE)
  if (prepared.kind !== 'container') throw new Error('no container')
  engineCli(['kill', prepared.id])
  const cleaned = await cleanupJob(ended(jobId), engine)
  t.equal(cleaned?.record.jobId, jobId)
  t.equal(cleaned?.record.usage, undefined, 'a stopped container has no cgroup left to read')
  t.same(containersOf(jobId), [])
  t.equal(await cleanupJob(ended(jobId), engine), undefined, 'missing is fine')
})

t.test('an image missing from the node is pulled from the registry', async t => {
  const jobId = `${process.pid}3.pull`
  t.teardown(() => cleanupJob(ended(jobId), engine))
  engineCli(['rmi', '-f', REGISTRY_IMAGE], { stdio: 'ignore' })
  const prepared = await prepareJob(facts(jobId, 'pulled'), config, engine, PROLOGUE)
  t.equal(prepared.kind === 'container' && prepared.imageSource, 'pulled')
  t.ok(await engine.hasImage(REGISTRY_IMAGE))
})

t.test('an image the registry lacks aborts the job; a registry that is down requeues it; both name the image', async t => {
  const missing = parseConfig(withTestEngine('queues:\n  q: { image: 127.0.0.1:5000/cbatch-test/no-such-image:1, pull: missing }\n'))
  await t.rejects(prepareJob(facts(`${process.pid}4.nopull`, 'q'), missing, engine, PROLOGUE), {
    name: 'ImageDeniedError', disposition: 'abort',
    userMessage: 'the registry refused image 127.0.0.1:5000/cbatch-test/no-such-image:1 (it does not exist there, or not for these credentials)',
  })
  const down = parseConfig(withTestEngine('images: { pullAttempts: 1 }\nqueues:\n  q: { image: 127.0.0.1:5009/cbatch-test/busybox:1, pull: missing }\n'))
  await t.rejects(prepareJob(facts(`${process.pid}5.nopull`, 'q'), down, engine, PROLOGUE),
    { name: 'ImagePullError', disposition: 'requeue', userMessage: 'cannot pull image 127.0.0.1:5009/cbatch-test/busybox:1' })
})

t.test('an engine that does not answer in time is a requeue, not a hang', async t => {
  // A socket that accepts and never answers, like a wedged dockerd.
  const { createServer } = await import('node:net')
  const { mkdtempSync } = await import('node:fs')
  const path = `${mkdtempSync('/tmp/cbatch-hang-')}/docker.sock`
  const accepted: import('node:net').Socket[] = []
  const server = createServer(socket => accepted.push(socket)).listen(path)
  t.teardown(() => {
    accepted.forEach(s => s.destroy())
    server.close()
  })
  const hanging = new DockerEngine({ socket: path, timeoutMs: 300, pullTimeoutMs: 300 })
  const started = Date.now()
  await t.rejects(prepareJob(facts(`${process.pid}5.hang`), config, hanging, PROLOGUE),
    { name: 'EngineTimeoutError', disposition: 'requeue', message: /did not answer in time/ })
  t.ok(Date.now() - started < 5000)
})

t.test('a queue cbatch does not manage is left alone', async t => {
  t.same(await prepareJob(facts('1.x', 'elsewhere'), config, engine, PROLOGUE), { kind: 'native' })
})

t.test('cgroupParent: torque puts the container under the job\'s TORQUE cgroup', async t => {
  const jobId = `${process.pid}6.torque`
  const torque = parseConfig(withTestEngine(`queues:\n  batch: { image: ${TEST_IMAGE}, pull: never, cgroupParent: torque }\n`))
  t.teardown(async () => {
    await cleanupJob(ended(jobId), engine)
    // What TORQUE itself would remove at the end of the job.
    execFileSync('sh', ['-c', `rmdir /sys/fs/cgroup/*/torque/${jobId} 2>/dev/null; true`])
  })
  const prepared = await prepareJob(facts(jobId), torque, engine, PROLOGUE)
  if (prepared.kind !== 'container') throw new Error('no container')
  const pid = (await engine.inspect(prepared.id))!.pid
  const names = engine.cgroupNames(prepared.id).join('|')
  t.match(readFileSync(`/proc/${pid}/cgroup`, 'utf8'), new RegExp(`:memory:/torque/${jobId.replace('.', '\\.')}/(${names})\\n`))
})

t.test('a running container\'s limits change (a sister\'s share once known), and the engine names its runtime', async t => {
  const jobId = `${process.pid}7.resize`
  t.teardown(() => cleanupJob(ended(jobId), engine))
  const prepared = await prepareJob(facts(jobId), config, engine, PROLOGUE)
  if (prepared.kind !== 'container') throw new Error('no container')
  const details = (await engine.inspect(prepared.id))!
  t.equal(details.runtime, 'runc', 'the OCI runtime by its name, not the engine\'s word for any')
  await engine.updateLimits(prepared.id, { memoryBytes: 96 * 1024 ** 2, memorySwapBytes: 96 * 1024 ** 2, cpus: 1 })
  const cgroup = (controller: string) => readFileSync(`/proc/${details.pid}/cgroup`, 'utf8').split('\n')
    .map(l => /^\d+:([^:]*):(.*)$/.exec(l)).find(m => m?.[1].split(',').includes(controller))![2]
  t.equal(readFileSync(`/sys/fs/cgroup/memory${cgroup('memory')}/memory.limit_in_bytes`, 'utf8').trim(), String(96 * 1024 ** 2))
  t.equal(readFileSync(`/sys/fs/cgroup/cpu${cgroup('cpu')}/cpu.cfs_quota_us`, 'utf8').trim(), '100000')
})
