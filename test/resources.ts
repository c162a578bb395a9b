import t from 'tap'
import { formatBytes } from '../lib/format.ts'
import { containerLimits, countRlimits, type LimitsPolicy } from '../lib/policy/resources.ts'
import { parseRequest } from '../lib/torque/request.ts'
import { parseNodes } from '../lib/torque/nodes.ts'

const quota: LimitsPolicy = { cpu: 'quota', defaultCpus: 1 }
const GiB = 1024 ** 3

t.test('nodes: counts, names, ppn, gpus, properties and + joins', async t => {
  t.same(parseNodes('1'), [{ count: 1, ppn: 1, gpus: 0, properties: [] }])
  t.same(parseNodes('2:ppn=4:gpus=1'), [{ count: 2, ppn: 4, gpus: 1, properties: [] }])
  t.same(parseNodes('node7:ppn=2:bigmem+3:ppn=8'), [
    { count: 1, name: 'node7', ppn: 2, gpus: 0, properties: ['bigmem'] },
    { count: 3, ppn: 8, gpus: 0, properties: [] },
  ])
  for (const bad of ['', '1:ppn=x', '1:ppn=0', '0:ppn=1', '1:gpus=-1', '1+', 'n:ppn=2:a=b']) {
    t.throws(() => parseNodes(bad), { name: 'UsageError' }, bad)
  }
})

t.test('the whole Resource_List', async t => {
  t.same(parseRequest('neednodes=1:ppn=2,nodes=1:ppn=2,mem=4gb,pmem=1gb,vmem=8gb,pvmem=2gb,walltime=01:00:00,procs=2,ncpus=2'), {
    nodes: [{ count: 1, ppn: 2, gpus: 0, properties: [] }], procs: 2, ncpus: 2,
    mem: 4 * GiB, pmem: GiB, vmem: 8 * GiB, pvmem: 2 * GiB, walltime: 3600,
  })
  t.same(parseRequest('walltime=90,mem=100mw'), { nodes: [], procs: undefined, ncpus: undefined, mem: 100 * 1024 ** 2 * 8, pmem: undefined, vmem: undefined, pvmem: undefined, walltime: 90 })
  t.throws(() => parseRequest('procs=0'), { message: 'procs=0 is not a whole number from 1 to 1000000' })
  t.throws(() => parseRequest('mem=4 gb'), { name: 'UsageError' })
  t.throws(() => parseRequest('walltime=1:2:3:4'), { name: 'UsageError' })
})

t.test('memory: mem, else pmem x CPUs, else the queue default; vmem adds swap', async t => {
  t.same(containerLimits(parseRequest('mem=2gb'), quota), { memoryBytes: 2 * GiB, memorySwapBytes: 2 * GiB, cpus: 1 })
  t.same(containerLimits(parseRequest('nodes=1:ppn=4,pmem=1gb'), quota), { memoryBytes: 4 * GiB, memorySwapBytes: 4 * GiB, cpus: 4 })
  t.same(containerLimits(parseRequest('mem=2gb,vmem=3gb'), quota), { memoryBytes: 2 * GiB, memorySwapBytes: 3 * GiB, cpus: 1 })
  t.same(containerLimits(parseRequest('nodes=1:ppn=2,pvmem=1gb'), quota), { memoryBytes: 2 * GiB, memorySwapBytes: 2 * GiB, cpus: 2 })
  t.same(containerLimits(parseRequest(''), { ...quota, defaultMem: GiB }), { memoryBytes: GiB, memorySwapBytes: GiB, cpus: 1 })
  t.same(containerLimits(parseRequest(''), { ...quota, cpu: 'none' }), {}, 'no request, no default: no limit')
})

t.test('CPUs: ppn on this node (PBS_NUM_PPN), ncpus, procs, default; quota or TORQUE cpuset', async t => {
  t.equal(containerLimits(parseRequest('nodes=2:ppn=8'), quota, { ppnHere: 3 }).cpus, 3)
  t.equal(containerLimits(parseRequest('ncpus=6'), quota).cpus, 6)
  t.equal(containerLimits(parseRequest('procs=5'), quota).cpus, 5)
  t.equal(containerLimits(parseRequest(''), { ...quota, defaultCpus: 2 }).cpus, 2)
  t.same(containerLimits(parseRequest('nodes=1:ppn=2'), { ...quota, cpu: 'cpuset' }, { torqueCpuset: '0,2' }), { cpuset: '0,2' })
  t.throws(() => containerLimits(parseRequest(''), { ...quota, cpu: 'cpuset' }), { name: 'PolicyError', message: /made none for this job/ })
})

t.test('maximums of the queue abort the job with what is allowed', async t => {
  t.throws(() => containerLimits(parseRequest('nodes=1:ppn=16'), { ...quota, maxCpus: 8 }),
    { name: 'PolicyError', message: 'the job asks for 16 CPUs on this node; its queue allows at most 8' })
  t.throws(() => containerLimits(parseRequest('vmem=64gb'), { ...quota, maxMem: 32 * GiB }),
    { message: 'the job asks for 64 GiB of memory; its queue allows at most 32 GiB' })
})

t.test('formatBytes', async t => {
  t.equal(formatBytes(0), '0 B')
  t.equal(formatBytes(1536), '1.5 KiB')
  t.equal(formatBytes(512 * 1024 ** 2), '512 MiB')
})

t.test('requests never lift a limit: zero, huge and malformed sizes and counts abort', async t => {
  for (const list of ['mem=0b', 'mem=0', 'vmem=0kb', 'pmem=0mb', 'pvmem=0', 'mem=99999999999999999999tb', 'ncpus=0', 'procs=99999999999',
    'nodes=1:ppn=0', 'nodes=1:ppn=99999999999', 'nodes=0', 'mem=-1gb', 'mem=1.5gb', 'ncpus=two']) {
    t.throws(() => containerLimits(parseRequest(list), quota), { name: 'UsageError', disposition: 'abort' }, list)
  }
  t.throws(() => containerLimits(parseRequest('nodes=1:ppn=4096,pmem=4tb'), quota), { message: 'pmem for 4096 CPUs is too large' })
  t.throws(() => containerLimits(parseRequest('mem=1kb'), quota), { name: 'PolicyError', message: /a container needs at least 6 MiB/ })
  t.throws(() => containerLimits(parseRequest('mem=1gb,vmem=1mb'), quota), { message: /at least 6 MiB/ }, 'vmem is a ceiling too')
})

t.test('a CPU quota is at most the node\'s CPUs (the engine refuses more)', async t => {
  t.equal(containerLimits(parseRequest('nodes=1:ppn=64'), quota, { hostCpus: 2 }).cpus, 2)
  t.equal(containerLimits(parseRequest('nodes=1:ppn=1'), quota, { hostCpus: 2 }).cpus, 1)
})

t.test('nofile and nproc: the queue\'s, soft = hard, never above what the engine can grant', async t => {
  const queue = { nofile: 4096, nproc: 8192 }
  t.same(countRlimits(queue), { nofile: { soft: 4096, hard: 4096 }, nproc: { soft: 8192, hard: 8192 } })
  t.same(countRlimits(queue, { nofile: 20000, nproc: 96367 }), countRlimits(queue), 'below the ceilings: as the queue says')
  t.same(countRlimits({ nofile: 65536, nproc: 65536 }, { nofile: 20000, nproc: 32768 }),
    { nofile: { soft: 20000, hard: 20000 }, nproc: { soft: 32768, hard: 32768 } }, 'above: the ceiling')
  t.same(countRlimits(queue, { nofile: 1048576 }).nproc, { soft: 8192, hard: 8192 }, 'no ceiling of processes known')
})
