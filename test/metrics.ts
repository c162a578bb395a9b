import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { flushMetrics, MetricsBatch, render } from '../lib/node/metrics.ts'

t.test('label values are escaped; each flush adds to what earlier hooks counted', async t => {
  const dir = t.testdir({})
  const textfile = join(dir, 'prom/cbatch.prom')
  const batch = new MetricsBatch()
  batch.count('cbatch_jobs_started_total', { queue: 'we"ird\\q\nx', node: 'mother' })
  batch.observe('cbatch_hook_duration_seconds', { hook: 'prologue' }, 0.25)
  const umask = process.umask(0o077) // the hooks' under pbs_mom
  try {
    flushMetrics(batch, textfile, join(dir, 'state'))
    flushMetrics(batch, textfile, join(dir, 'state'))
  } finally {
    process.umask(umask)
  }
  t.equal(statSync(textfile).mode & 0o777, 0o644, 'readable by node_exporter, whoever it runs as')
  const families = parsePrometheusTextFormat(readFileSync(textfile, 'utf8')) as { name: string; metrics: { value?: string; sum?: string; count?: string; labels?: Record<string, string> }[] }[]
  const started = families.find(f => f.name === 'cbatch_jobs_started_total')!
  t.same(started.metrics, [{ value: '2', labels: { node: 'mother', queue: 'we"ird\\q\nx' } }])
  t.match(families.find(f => f.name === 'cbatch_hook_duration_seconds')!.metrics, [{ count: '2', sum: '0.5', labels: { hook: 'prologue' } }])
  t.equal(render({}), '\n', 'nothing counted: nothing said')
})
