// Limits from the job's request, and accounting of what it really used, on the real engine.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { parseConfig } from '../lib/policy/parse.ts'
import { TEST_ENGINE, testEngine } from './helpers/engine.ts'
import { hooksFor } from '../emulator/emulator.ts'
import { prepareJob } from '../lib/job/prologue.ts'
import { containersLeft, PROLOGUE, runJob, sharedDir, testConfig, TEST_USER } from './helpers/jobs.ts'
import { jobContext } from '../lib/torque/job.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const ACCOUNTING = `${shared.path}/accounting.jsonl`
const config = testConfig(shared.path, `accounting: { file: ${ACCOUNTING} }\n`)
const MiB = 1024 ** 2

const recordOf = (jobId: string): AccountingRecord => readFileSync(ACCOUNTING, 'utf8').trim().split('\n')
  .map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === jobId)!

t.test('a job over its mem is killed by the kernel, and told so', async t => {
  const { job } = await runJob('#!/bin/sh\necho start\nexec dd if=/dev/zero of=/dev/null bs=200M count=1\n', { config, resources: 'nodes=1:ppn=1,mem=64mb' })
  t.equal(job.exitStatus, 137, 'the exit status of a killed job')
  t.match(job.stderr, 'cbatch: job killed: out of memory (limit 64 MiB)\n')
  t.match(job.stdout, /cbatch: .*exit 137, killed: out of memory \(limit 64 MiB\)\n$/)
  const record = recordOf(job.jobId)
  t.equal(record.oomKilled, true)
  t.equal(record.usage!.memory.limitBytes, 64 * MiB)
  t.ok(record.usage!.memory.peakBytes <= 64 * MiB, 'never above the limit')
  t.same(await containersLeft(job.jobId), [])
})

t.test('ppn=1 gives two busy loops one CPU between them', async t => {
  const loop = 'timeout 3 sh -c "while :; do :; done"'
  const { job } = await runJob(`#!/bin/sh\n${loop} &\n${loop} &\nwait\n`, { config, resources: 'nodes=1:ppn=1' })
  t.equal(job.exitStatus, 0, job.stderr)
  const { usage } = recordOf(job.jobId)
  // Unlimited, the two loops would use about 6 s of CPU in their 3 s.
  t.ok(usage!.cpu.totalSeconds > 2.4 && usage!.cpu.totalSeconds < 3.6, `cpu ${usage!.cpu.totalSeconds} s in 3 s`)
})

t.test('CPU time and peak memory match what the job burnt within 10%', async t => {
  const { job } = await runJob(`#!/bin/sh
timeout 2 sh -c "while :; do :; done"
dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null
times
`, { config, resources: 'nodes=1:ppn=2' })
  t.equal(job.exitStatus, 0, job.stderr)
  // `times`: the shell's user/system, then its children's.
  const seconds = (v: string) => { const [, m, s] = /(\d+)m([\d.]+)s/.exec(v)!; return Number(m) * 60 + Number(s) }
  const [, children] = job.stdout.trim().split('\n')
  const burnt = children.split(' ').map(seconds).reduce((a, b) => a + b)
  const { usage } = recordOf(job.jobId)
  t.ok(Math.abs(usage!.cpu.totalSeconds - burnt) <= 0.1 * burnt, `cgroup ${usage!.cpu.totalSeconds} s, job ${burnt} s`)
  const peak = usage!.memory.peakBytes
  t.ok(Math.abs(peak - 100 * MiB) <= 10 * MiB, `peak ${peak / MiB} MiB for a 100 MiB buffer`)
  t.equal(usage!.cpu.limitCpus, 2, 'the CPUs it was given: ppn=2')
  t.match(job.stdout, new RegExp(`cbatch: cpu ${usage!.cpu.totalSeconds.toFixed(1)} s, cpus 2 \\([\\d,-]+\\), peak mem \\d+(\\.\\d)? MiB incl\\. page cache \\([\\d.]+ (B|KiB|MiB) at end\\), wall 00:00:0\\d, exit 0\\n$`))
})

t.test('a job that writes 60 MiB of output: its peak counts that page cache, the record says how much, and the job\'s own', async t => {
  // Less than cbatch run's record holds (64 MiB): its end, the summary line, is in job.stdout.
  const { job } = await runJob('#!/bin/sh\ndd if=/dev/zero bs=1M count=60 2>/dev/null\n', { config })
  t.equal(job.exitStatus, 0, job.stderr)
  const { memory } = recordOf(job.jobId).usage!
  t.comment(`peak ${(memory.peakBytes / MiB).toFixed(1)} MiB, page cache at end ${(memory.pageCacheBytes! / MiB).toFixed(1)} MiB, own ${(memory.ownPeakBytes! / MiB).toFixed(1)} MiB`)
  t.ok(memory.pageCacheBytes! > 50 * MiB, 'the output\'s page cache, charged to the job')
  t.ok(memory.ownPeakBytes! < 30 * MiB, 'the job\'s own: dd and its shell')
  t.equal(memory.ownPeakBytes, Math.max(0, memory.peakBytes - memory.pageCacheBytes!))
  t.match(job.stdout.slice(-200), /peak mem \d+(\.\d)? MiB incl\. page cache \(\d+(\.\d)? MiB at end\)/)
})

t.test('16 epilogues writing at once leave 16 valid JSON lines', async t => {
  const parallel = `${shared.path}/parallel.jsonl`
  const engine = testEngine({ timeoutMs: 60_000 })
  const queues = parseConfig(readFileSync(config, 'utf8'))
  const jobIds = Array.from({ length: 16 }, (_, i) => `${process.pid}${i}.parallel`)
  await Promise.all(jobIds.map(jobId => prepareJob(
    jobContext({ jobId, user: TEST_USER, group: '', jobName: 'p', resources: '', queue: 'batch', account: '' }, {}), queues, engine, PROLOGUE)))
  const epilogueConfig = testConfig(shared.path, `accounting: { file: ${parallel} }\n`)
  const statuses = await Promise.all(jobIds.map(jobId => new Promise<number | null>(resolve => {
    const child = spawn(join(hooksFor(join(import.meta.dirname, '../dist'), epilogueConfig), 'epilogue'),
      [jobId, TEST_USER, TEST_USER, 'p', '0', '', '', 'batch', '', '0', `/x/jobs/${jobId}.SC`], { stdio: 'ignore' })
    child.on('close', resolve)
  })))
  t.same(statuses, jobIds.map(() => 0))
  const lines = readFileSync(parallel, 'utf8').split('\n').filter(Boolean)
  t.equal(lines.length, 16)
  t.same(lines.map(l => (JSON.parse(l) as AccountingRecord).jobId).sort(), [...jobIds].sort())
  t.same((await Promise.all(jobIds.map(id => containersLeft(id)))).flat(), [])
})

/** What `ulimit` says in the job's container, and whether raising either limit worked. */
const ULIMITS = `#!/bin/sh
echo "nofile=$(ulimit -n):$(ulimit -Hn) nproc=$(ulimit -u):$(ulimit -Hu)"
ulimit -n $(( $(ulimit -Hn) + 1 )) 2>/dev/null; echo "raise-nofile=$?"
ulimit -u $(( $(ulimit -Hu) + 1 )) 2>/dev/null; echo "raise-nproc=$?"
`

t.test('the job sees its queue\'s nofile and nproc, soft = hard, and cannot raise them', async t => {
  const queue = testConfig(shared.path, '    nofile: 1000\n    nproc: 3000\n')
  const { job } = await runJob(ULIMITS, { config: queue })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'nofile=1000:1000 nproc=3000:3000\nraise-nofile=1\nraise-nproc=1\n')
})

t.test('a queue asking more than the engine can grant gets what it can, and its jobs run', async t => {
  // Root with CAP_SYS_RESOURCE (a compute node's) grants up to the kernel's bounds; without
  // it (this test machine), the engine daemon's own hard limits bound what it can give.
  const mayRaise = (BigInt(`0x${/^CapEff:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n & 1n) === 1n
  const daemon = TEST_ENGINE === 'podman' ? readFileSync('/var/lib/cbatch-test/podman.pid', 'utf8').trim() : readFileSync('/var/run/docker.pid', 'utf8').trim()
  const hard = (label: string) => new RegExp(`^${label}\\s+\\S+\\s+(\\S+)`, 'm').exec(readFileSync(`/proc/${daemon}/limits`, 'utf8'))![1]
  const expected = mayRaise ? `nofile=${readFileSync('/proc/sys/fs/nr_open', 'utf8').trim()} nproc=4194304`
    : `nofile=${hard('Max open files')} nproc=${hard('Max processes')}`
  const queue = testConfig(shared.path, '    nofile: 1073741816\n    nproc: 4194304\n')
  const { job } = await runJob(ULIMITS, { config: queue })
  t.equal(job.exitStatus, 0, job.stderr)
  const [, nofile, nproc] = /nofile=(\d+):\d+ nproc=(\d+):\d+/.exec(job.stdout)!
  t.equal(`nofile=${nofile} nproc=${nproc}`, expected)
})
