// The metrics textfile after jobs that run, are refused and are requeued, read with a
// Prometheus text-format parser.
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { emulateJob } from '../emulator/emulator.ts'
import { sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
// In a directory of root's, as node_exporter's is.
const textfile = `/var/lib/cbatch-test/metrics-${process.pid}/cbatch.prom`
t.teardown(() => {
  rmSync(dirname(textfile), { recursive: true, force: true })
  rmSync(`/var/lib/cbatch/metrics-${createHash('sha256').update(textfile).digest('hex').slice(0, 16)}.json`, { force: true })
})
const yaml = (extra = '') => `engine: { requeuePause: 0${extra} }\nlog: { file: "" }\nmetrics: { textfile: ${textfile} }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`

interface Family { name: string; type: string; metrics: { value?: string; count?: string; sum?: string; labels?: Record<string, string> }[] }
const families = (): Map<string, Family> => new Map((parsePrometheusTextFormat(readFileSync(textfile, 'utf8')) as Family[]).map(f => [f.name, f]))
const value = (f: Family | undefined, labels: Record<string, string>) =>
  Number(f?.metrics.find(m => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value ?? 0)

const run = (config: string, resources = 'nodes=1') => {
  const script = join(shared.path, 'job.sh')
  writeFileSync(script, '#!/bin/sh\ntrue\n', { mode: 0o644 })
  return emulateJob({ script, user: TEST_USER, queue: 'batch', resources, config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path })
}

t.test('jobs that run, are refused and are requeued, counted', async t => {
  const config = writeConfig(shared.path, yaml())
  for (let i = 0; i < 2; i++) t.equal((await run(config)).exitStatus, 0)
  t.equal((await run(config, 'nodes=1,mem=0b')).exitStatus, 125, 'refused')
  const down = writeConfig(shared.path, yaml(`, socket: /var/lib/cbatch-test/no-engine-${process.pid}.sock`))
  t.equal((await run(down)).outcome, 'requeued')

  const m = families()
  t.equal(m.get('cbatch_jobs_started_total')?.type, 'COUNTER')
  t.equal(value(m.get('cbatch_jobs_started_total'), { queue: 'batch', node: 'mother' }), 2)
  t.equal(value(m.get('cbatch_jobs_ended_total'), { queue: 'batch', node: 'mother' }), 2)
  const outcomes = m.get('cbatch_prologue_outcomes_total')
  t.same(['ok', 'abort', 'requeue'].map(outcome => value(outcomes, { hook: 'prologue', outcome })), [2, 1, 1])
  const durations = m.get('cbatch_hook_duration_seconds')
  t.equal(durations?.type, 'SUMMARY')
  const prologue = durations?.metrics.find(s => s.labels?.hook === 'prologue')
  t.equal(Number(prologue?.count), 4, 'every prologue run timed')
  t.ok(Number(prologue?.sum) > 0)
  t.equal(Number(durations?.metrics.find(s => s.labels?.hook === 'epilogue')?.count), 2, 'the requeued job had no epilogue, the refused one ended before reading its config')
})

t.test('while a job runs the running-jobs gauge counts it; the job starter\'s time is its own, to the job\'s start, not the job\'s run', async t => {
  const config = writeConfig(shared.path, yaml())
  const starter = () => families().get('cbatch_hook_duration_seconds')?.metrics.find(s => s.labels?.hook === 'jobstarter')
  const before = { count: Number(starter()?.count ?? 0), sum: Number(starter()?.sum ?? 0) }
  t.equal(value(families().get('cbatch_oom_kills_total'), { queue: 'batch' }), 0, 'a counter before its first event: there, at 0')
  const script = join(shared.path, 'sleeper.sh')
  writeFileSync(script, '#!/bin/sh\nsleep 4\n', { mode: 0o644 })
  const job = emulateJob({ script, user: TEST_USER, queue: 'batch', resources: 'nodes=1', config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path })
  let running = 0
  for (let i = 0; i < 30 && !running; i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    running = value(families().get('cbatch_jobs_running'), { queue: 'batch' })
  }
  t.equal(running, 1, 'its container, counted by its prologue')
  t.equal(families().get('cbatch_jobs_running')?.type, 'GAUGE')
  t.equal((await job).exitStatus, 0)
  t.equal(value(families().get('cbatch_jobs_running'), { queue: 'batch' }), 0, 'and no more once its epilogue removed it')
  const after = { count: Number(starter()?.count), sum: Number(starter()?.sum) }
  t.equal(after.count, before.count + 1)
  t.ok(after.sum - before.sum < 2, `the starter took ${(after.sum - before.sum).toFixed(3)} s of a job of 4 s`)
})
