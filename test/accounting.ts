import t from 'tap'
import { readFileSync } from 'node:fs'
import { appendRecord, summaryLine, type AccountingRecord } from '../lib/job/accounting.ts'
import { formatDuration } from '../lib/format.ts'

const record: AccountingRecord = {
  time: '2026-01-01T00:00:00.000Z', jobId: '1.srv', user: 'alice', queue: 'batch', node: 'n1', nodeNumber: 0, container: 'cbatch-1',
  image: 'img:1', runtime: 'runc', exitStatus: 0, wallSeconds: 62, oomKilled: false,
  usage: {
    version: 1, cpu: { userSeconds: 10, systemSeconds: 2.3, totalSeconds: 12.3 },
    memory: { currentBytes: 0, peakBytes: 512 * 1024 ** 2, limitBytes: 1024 ** 3, oomKills: 0 }, io: { readBytes: 0, writeBytes: 0 }, pids: {},
  },
}

t.test('the summary line for the job owner', async t => {
  t.equal(summaryLine(record), 'cbatch: cpu 12.3 s, peak mem 512 MiB, wall 00:01:02, exit 0')
  t.equal(summaryLine({ ...record, usage: undefined, exitStatus: 271 }), 'cbatch: wall 00:01:02, exit 271')
  t.equal(summaryLine({ ...record, oomKilled: true, exitStatus: 137 }),
    'cbatch: cpu 12.3 s, peak mem 512 MiB, wall 00:01:02, exit 137, killed: out of memory (limit 1 GiB)')
  const given = { ...record.usage!, cpu: { ...record.usage!.cpu, limitCpus: 1.5, cpuset: '0-3,8' }, memory: { ...record.usage!.memory, pageCacheBytes: 200 * 1024 ** 2, ownPeakBytes: 312 * 1024 ** 2 } }
  t.equal(summaryLine({ ...record, usage: given, gpus: [0, 2] }),
    'cbatch: cpu 12.3 s, cpus 1.5 (0-3,8), peak mem 512 MiB incl. page cache (200 MiB at end), gpus 0,2, wall 00:01:02, exit 0', 'what it was given; the page cache its peak counts')
  const { limitCpus: _, ...cpusetOnly } = given.cpu
  t.match(summaryLine({ ...record, usage: { ...given, cpu: cpusetOnly } }), 'cpus 5 (0-3,8)', 'no quota: the cpuset\'s CPUs')
  t.equal(formatDuration(3600 * 27 + 61.4), '27:01:01')
})

t.test('records are appended as JSON lines, earlier ones untouched', async t => {
  const dir = t.testdir({ 'acct.jsonl': '{"earlier":true}\n' })
  appendRecord(`${dir}/acct.jsonl`, record)
  appendRecord(`${dir}/acct.jsonl`, { ...record, jobId: '2.srv' })
  const lines = readFileSync(`${dir}/acct.jsonl`, 'utf8').trim().split('\n').map(l => JSON.parse(l))
  t.same(lines.map(l => l.jobId ?? 'earlier'), ['earlier', '1.srv', '2.srv'])
  t.same(lines[1], record)
  appendRecord(`${dir}/new/dir/acct.jsonl`, record)
  t.equal(readFileSync(`${dir}/new/dir/acct.jsonl`, 'utf8'), `${JSON.stringify(record)}\n`)
})
