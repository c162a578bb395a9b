// GPUs: a job gets exactly the GPUs pbs_mom allocated it, as device nodes here (this node
// has no NVIDIA runtime): fake /dev/nvidia* character devices, made with mknod in a test
// directory that the queue names as the node's device directory.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { emulateJob } from '../emulator/emulator.ts'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { TEST_ENGINE } from './helpers/engine.ts'
import { sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const devices = mkdtempSync(join(shared.path, 'dev-'))
chmodSync(devices, 0o755)
// NVIDIA's majors: 195 for the GPUs and nvidiactl (255); nvidia-uvm's is dynamic.
for (let i = 0; i < 4; i++) execFileSync('mknod', [join(devices, `nvidia${i}`), 'c', '195', String(i)])
execFileSync('mknod', [join(devices, 'nvidiactl'), 'c', '195', '255'])
execFileSync('mknod', [join(devices, 'nvidia-uvm'), 'c', '239', '0'])
const accounting = join(shared.path, 'accounting.jsonl')
const config = writeConfig(shared.path, `log: { file: ${shared.path}/cbatch.log }
accounting: { file: ${accounting} }
queues:
  gpu: { image: ${TEST_IMAGE}, pull: never, gpus: { devices: ${devices} } }
  vendor: { image: ${TEST_IMAGE}, pull: never, gpus: { devices: ${devices}, runtime: nvidia } }
  cpu: { image: ${TEST_IMAGE}, pull: never }
`)

const run = (queue: string, resources: string, gpus?: number[]) => {
  const script = join(shared.path, `job-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(script, '#!/bin/sh\necho "devices: $(ls /dev | grep nvidia | tr "\\n" " ")"\necho "visible=$CUDA_VISIBLE_DEVICES"\n', { mode: 0o644 })
  return emulateJob({ script, user: TEST_USER, queue, resources, gpus, config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path })
}

t.test('a job gets exactly the GPUs pbs_mom gave it, numbered from 0 inside, and they are accounted', async t => {
  const job = await run('gpu', 'nodes=1:ppn=1:gpus=2', [1, 3])
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'devices: nvidia-uvm nvidia1 nvidia3 nvidiactl \n', 'its two GPUs and the control devices, no others')
  t.match(job.stdout, 'visible=0,1\n', 'CUDA_VISIBLE_DEVICES names the container\'s GPUs, not the node\'s indices')
  const line = readFileSync(accounting, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === job.jobId)
  t.same(line?.gpus, [1, 3])
})

t.test('a job without GPUs gets no GPU device, whatever its environment says', async t => {
  const job = await run('gpu', 'nodes=1:ppn=1')
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'devices: \n')
  t.match(job.stdout, 'visible=\n')
})

t.test('GPUs the queue does not give, or the node does not have, refuse the job with the reason', async t => {
  const none = await run('cpu', 'nodes=1:ppn=1:gpus=1')
  t.equal(none.exitStatus, 125)
  t.match(none.stderr, 'cbatch: the job asks for 1 GPU; queue cpu gives none')
  const missing = await run('gpu', 'nodes=1:ppn=1:gpus=2', [2, 7])
  t.equal(missing.exitStatus, 125)
  t.match(missing.stderr, 'cbatch: the job asks for GPU 7, which this node does not have')
})

// Podman hands GPUs in by their Container Device Interface names (nvidia.com/gpu=<index>),
// as the NVIDIA Container Toolkit's generated spec names them; here a spec of the fake
// device nodes, under the same kind. Docker's route (device requests to the NVIDIA runtime)
// needs that runtime, which this node does not have.
t.test('GPUs through the vendor\'s route: on Podman, the CDI devices of exactly the job\'s GPUs', { skip: TEST_ENGINE !== 'podman' && 'Docker\'s route needs the NVIDIA runtime' }, async t => {
  const spec = `/var/run/cdi/cbatch-test-${process.pid}.json`
  mkdirSync('/var/run/cdi', { recursive: true })
  // A spec an earlier run left would name the same devices: Podman refuses such a clash.
  for (const old of readdirSync('/var/run/cdi').filter(f => /^cbatch-test-\d+\.json$/.test(f))) rmSync(join('/var/run/cdi', old))
  const node = (name: string) => ({ path: `/dev/${name}`, hostPath: join(devices, name) })
  writeFileSync(spec, JSON.stringify({
    cdiVersion: '0.5.0', kind: 'nvidia.com/gpu',
    devices: [0, 1, 2, 3].map(i => ({ name: String(i), containerEdits: { deviceNodes: [node(`nvidia${i}`)] } })),
    // A node only the spec has: the devices came through CDI, not as cbatch's device nodes.
    containerEdits: { deviceNodes: [node('nvidiactl'), node('nvidia-uvm'), { path: '/dev/nvidia-from-cdi', hostPath: join(devices, 'nvidiactl') }] },
  }))
  t.teardown(() => rmSync(spec, { force: true }))
  const job = await run('vendor', 'nodes=1:ppn=1:gpus=2', [1, 3])
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'devices: nvidia-from-cdi nvidia-uvm nvidia1 nvidia3 nvidiactl \n', 'the spec\'s devices of its two GPUs, and the common ones, no others')
  t.match(job.stdout, 'visible=0,1\n')
  const line = readFileSync(accounting, 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === job.jobId)
  t.same(line?.gpus, [1, 3])
})
