import t from 'tap'
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { jobGpus, visibleDevicesInside } from '../lib/host/gpus.ts'
import { allocatedGpus } from '../lib/torque/job.ts'

t.test('the gpu file: this node\'s lines only, short or full host name', async t => {
  const dir = t.testdir({ gpu: 'n1-gpu3\nn1.cluster-gpu1\nn2-gpu0\nn1-gpu3\n' })
  t.same(allocatedGpus(join(dir, 'gpu'), 'n1.cluster'), [1, 3])
  t.same(allocatedGpus(join(dir, 'gpu'), 'n2'), [0])
  t.same(allocatedGpus(join(dir, 'missing'), 'n1'), [])
})

t.test('never fewer, more or other GPUs than asked, given and present', async t => {
  const dir = t.testdir({})
  for (const name of ['nvidia0', 'nvidia2']) execFileSync('mknod', [join(dir, name), 'c', '195', name.slice(6)])
  execFileSync('mknod', [join(dir, 'nvidiactl'), 'c', '195', '255'])
  t.same(jobGpus(1, [2, 0], dir), { indices: [2], devices: [join(dir, 'nvidia2'), join(dir, 'nvidiactl')] })
  t.throws(() => jobGpus(2, [0], dir), { name: 'PolicyError', message: 'the job asks for 2 GPUs; pbs_mom gave it 1 on this node' })
  t.throws(() => jobGpus(1, [], dir), { message: /pbs_mom gave it 0 on this node \(is pbs_mom built with NVIDIA GPU support/ })
  t.throws(() => jobGpus(2, [0, 1], dir), { message: 'the job asks for GPU 1, which this node does not have' })
})

t.test('CUDA_VISIBLE_DEVICES inside: the container\'s GPUs from 0, none without', async t => {
  t.same(visibleDevicesInside({ A: '1', CUDA_VISIBLE_DEVICES: '1,3' }, '1,3'), { A: '1', CUDA_VISIBLE_DEVICES: '0,1' })
  t.same(visibleDevicesInside({ A: '1', CUDA_VISIBLE_DEVICES: '1,3' }, undefined), { A: '1' })
})
