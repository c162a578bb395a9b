// A sister's container made before its share was known gets it from the job file's exec_host.
import t from 'tap'
import { resizeSister } from '../lib/job/share.ts'
import { parseConfig } from '../lib/policy/parse.ts'
import { runningJob } from '../lib/torque/job.ts'
import { FakeEngine, testSpec } from './helpers/fake-engine.ts'

const config = parseConfig('queues:\n  batch: { image: busybox }\n')
const record = { jobId: '5.vm', queue: 'batch', user: 'alice', uid: 1001, group: 'alice', gid: 1001, cookie: 'C', resources: 'nodes=1:ppn=2+1:ppn=1,mem=300mb', execHost: 'vm2/0+vm/0-1' }
const job = runningJob(record)

async function sister(engine: FakeEngine, labels: Record<string, string>) {
  const id = await engine.run(testSpec({ name: 'cbatch-5.vm', image: 'busybox', labels: { 'cbatch.job': '5.vm', 'cbatch.node': '1', ...labels } }))
  return (await engine.inspect(id))!
}

t.test('a provisional container gets this node\'s slots and its share of mem', async t => {
  const engine = new FakeEngine()
  const container = await sister(engine, { 'cbatch.provisional': 'true' })
  const limits = await resizeSister(job, container, config, engine)
  // Node 1 is vm, with 2 of the job's 3 slots: 2 CPUs, 200 MiB of its 300.
  t.same(limits, { memoryBytes: 200 * 1024 ** 2, memorySwapBytes: 200 * 1024 ** 2, cpus: Math.min(2, (await import('node:os')).availableParallelism()) })
  t.match(engine.calls.at(-1), /^updateLimits /)
})

t.test('a container sized from a sure share, another job\'s, or a job file without exec_host is left as it is', async t => {
  const engine = new FakeEngine()
  t.equal(await resizeSister(job, await sister(engine, {}), config, engine), undefined)
  t.equal(await resizeSister(runningJob({ ...record, jobId: '6.vm' }), await sister(engine, { 'cbatch.provisional': 'true' }), config, engine), undefined)
  t.equal(await resizeSister(runningJob({ ...record, execHost: undefined }), await sister(engine, { 'cbatch.provisional': 'true' }), config, engine), undefined)
  t.notOk(engine.calls.some(c => c.startsWith('updateLimits')))
})

t.test('a share its queue does not allow refuses the task', async t => {
  const engine = new FakeEngine()
  const strict = parseConfig('queues:\n  batch: { image: busybox, limits: { maxCpus: 1 } }\n')
  await t.rejects(resizeSister(job, await sister(engine, { 'cbatch.provisional': 'true' }), strict, engine), { name: 'PolicyError', message: /asks for 2 CPUs on this node; its queue allows at most 1/ })
})
