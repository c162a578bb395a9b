import t from 'tap'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { flushMetrics, MetricsBatch, render } from '../lib/node/metrics.ts'

t.test('label values are escaped; each flush adds to what earlier hooks counted', async t => {
  const dir = t.testdir({})
  const textfile = join(dir, 'prom/cbatch.prom')
  const hook = () => {
    const batch = new MetricsBatch()
    batch.count('cbatch_jobs_started_total', { queue: 'we"ird\\q\nx', node: 'mother' })
    batch.observe('cbatch_hook_duration_seconds', { hook: 'prologue' }, 0.25)
    return batch
  }
  const umask = process.umask(0o077) // the hooks' under pbs_mom
  try {
    flushMetrics(hook(), textfile, join(dir, 'state'))
    flushMetrics(hook(), textfile, join(dir, 'state'))
  } finally {
    process.umask(umask)
  }
  t.equal(statSync(textfile).mode & 0o777, 0o644, 'readable by node_exporter, whoever it runs as')
  const families = parsePrometheusTextFormat(readFileSync(textfile, 'utf8')) as { name: string; metrics: { value?: string; sum?: string; count?: string; labels?: Record<string, string> }[] }[]
  const started = families.find(f => f.name === 'cbatch_jobs_started_total')!
  t.same(started.metrics, [{ value: '2', labels: { node: 'mother', queue: 'we"ird\\q\nx' } }])
  t.match(families.find(f => f.name === 'cbatch_hook_duration_seconds')!.metrics.find(m => m.labels?.hook === 'prologue'), { count: '2', sum: '0.5' })
  t.equal(render({}), '\n', 'nothing counted: nothing said')
})

type Families = { name: string; type: string; metrics: { value?: string; sum?: string; count?: string; labels?: Record<string, string> }[] }[]

t.test('every series is there from the first write, at 0: for each queue of the config, hook and outcome', async t => {
  const dir = t.testdir({})
  const textfile = join(dir, 'cbatch.prom')
  const batch = new MetricsBatch()
  batch.queues = ['batch', 'gpu']
  batch.observe('cbatch_hook_duration_seconds', { hook: 'nodecheck' }, 0.1)
  flushMetrics(batch, textfile, join(dir, 'state'))
  const families = parsePrometheusTextFormat(readFileSync(textfile, 'utf8')) as Families
  const family = (name: string) => families.find(f => f.name === name)!
  t.same(families.map(f => f.name).sort(), ['cbatch_hook_duration_seconds', 'cbatch_image_pull_duration_seconds', 'cbatch_image_pulls_total',
    'cbatch_jobs_ended_total', 'cbatch_jobs_running', 'cbatch_jobs_started_total', 'cbatch_oom_kills_total', 'cbatch_orphans_collected_total',
    'cbatch_prologue_outcomes_total'])
  for (const f of families) {
    t.match(f.name, f.type === 'COUNTER' ? /_total$/ : f.type === 'SUMMARY' ? /_seconds$/ : /^cbatch_jobs_running$/, `${f.name}: ${f.type}`)
  }
  t.same(family('cbatch_oom_kills_total').metrics, [{ value: '0', labels: { queue: 'batch' } }, { value: '0', labels: { queue: 'gpu' } }])
  t.equal(family('cbatch_jobs_started_total').metrics.length, 4, 'each queue on a mother superior and a sister')
  t.same(family('cbatch_image_pulls_total').metrics.map(m => `${m.labels!.outcome} ${m.value}`).sort(), ['failed 0', 'ok 0', 'refused 0'])
  t.same(family('cbatch_orphans_collected_total').metrics, [{ value: '0' }])
  const hooks = family('cbatch_hook_duration_seconds').metrics
  t.same(hooks.map(m => m.labels!.hook).sort(), ['epilogue', 'epilogue.parallel', 'jobstarter', 'nodecheck', 'prologue', 'prologue.parallel'])
  t.match(hooks.find(m => m.labels!.hook === 'nodecheck'), { count: '1', sum: '0.1' })
  t.match(hooks.find(m => m.labels!.hook === 'prologue'), { count: '0', sum: '0' })
  t.equal(family('cbatch_jobs_running').type, 'GAUGE')
})

t.test('a gauge is set whole: the series a hook did not give are 0, a batch once written is not written again', async t => {
  const dir = t.testdir({})
  const textfile = join(dir, 'cbatch.prom')
  const running = () => (parsePrometheusTextFormat(readFileSync(textfile, 'utf8')) as Families)
    .find(f => f.name === 'cbatch_jobs_running')!.metrics.map(m => `${m.labels!.queue} ${m.value}`).sort()
  const batch = new MetricsBatch()
  batch.queues = ['batch']
  batch.set('cbatch_jobs_running', [{ labels: { queue: 'batch' }, value: 2 }, { labels: { queue: 'old' }, value: 1 }])
  batch.count('cbatch_orphans_collected_total')
  flushMetrics(batch, textfile, join(dir, 'state'))
  t.same(running(), ['batch 2', 'old 1'])
  batch.set('cbatch_jobs_running', [{ labels: { queue: 'batch' }, value: 1 }])
  flushMetrics(batch, textfile, join(dir, 'state'))
  t.same(running(), ['batch 1', 'old 0'])
  t.match(readFileSync(textfile, 'utf8'), /^cbatch_orphans_collected_total 1$/m, 'counted once though flushed twice')
})
