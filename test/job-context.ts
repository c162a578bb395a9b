// lib/torque/job.ts: a prologue's job, read once from pbs_mom's arguments, environment and files.
import t from 'tap'
import { join } from 'node:path'
import { jobContext } from '../lib/torque/job.ts'

const facts = { jobId: '4.vm', user: 'alice', group: 'users', jobName: 'j', resources: 'nodes=1:ppn=2:gpus=1,mem=1gb', queue: 'batch', account: '' }

t.test('argv, environment, node file, gpu file and TORQUE\'s cpuset make one context', async t => {
  const dir = t.testdir({
    aux: { '4.vm': 'n1\nn1\n', '4.vmgpu': 'n1-gpu3\nn2-gpu0\n' },
    sys: { cpuset: { torque: { '4.vm': { 'cpuset.cpus': '2-3\n' } } } },
  })
  // A real mom may name the node file with a double slash.
  const env = { PBS_NODEFILE: `${dir}/aux//4.vm`, PBS_O_WORKDIR: '/home/alice/run', TMPDIR: '/tmp/4.vm' }
  const job = jobContext(facts, env, { host: 'n1.cluster', cgroups: { proc: '/nonexistent', sys: join(dir, 'sys') } })
  t.match(job, {
    jobId: '4.vm', queue: 'batch', request: { mem: 1024 ** 3, nodes: [{ count: 1, ppn: 2, gpus: 1 }] },
    share: { nodes: 1, number: 0, ppnHere: 2, npTotal: 2 }, nodeFile: `${dir}/aux/4.vm`, gpus: [3], cpuset: '2-3',
    workDir: '/home/alice/run', tmpDir: '/tmp/4.vm',
  })
})

t.test('a sister before pbs_mom wrote its files: the share from the spec, no GPUs, no node file', async t => {
  const job = jobContext({ ...facts, resources: 'nodes=2:ppn=2' }, { PBS_NODENUM: '1', PBS_NUM_NODES: '2' }, { cgroups: { proc: '/nonexistent', sys: '/nonexistent' } })
  t.match(job, { share: { nodes: 2, number: 1, ppnHere: 2, npTotal: 4 }, gpus: [], nodeFile: undefined, cpuset: undefined })
})

t.test('a malformed Resource_List is refused as the context is made', async t => {
  t.throws(() => jobContext({ ...facts, resources: 'mem=0b' }, {}, { cgroups: { proc: '/nonexistent', sys: '/nonexistent' } }), { name: 'UsageError', message: /mem=0b/ })
})
