// Metrics for node_exporter's textfile collector (config `metrics.textfile`). Each hook is
// a short process, so the counts live in a state file of root's, updated by each hook
// under a lock, and the .prom file is rewritten whole (rename) from it every time.
// Counters and summaries, which a short-lived process adds to and never loses, and one
// gauge, the jobs running now, which the hooks that start and end jobs (and the node
// check) set from the engine. As node_exporter's textfile collector wants: every series
// there from the first write, 0 until its first event (one per label value cbatch knows:
// the config's queues, the hooks, the outcomes). (A client library such as prom-client
// keeps metrics in one process's memory: here they span thousands of processes, so the
// little text format is written here.)
import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { dirname, join } from 'node:path'
import { makeRootDir, replaceFile } from '../host/trusted.ts'
import { HOOKS } from '../torque/hooks.ts'

/** Where the counts behind each textfile are kept. */
export const METRICS_STATE_DIR = '/var/lib/cbatch'

/** Stands for the config's queues among a metric's label values. */
const QUEUES = Symbol('the config\'s queues')
const NODE = ['mother', 'sister']
/** The hooks pbs_mom runs: the puller's time is cbatch_image_pull_duration_seconds. */
const TIMED_HOOKS = HOOKS.filter(h => h.momPrivFile).map(h => h.name)

interface Metric {
  type: 'counter' | 'summary' | 'gauge'
  help: string
  /** Every value of each label, for the series written from the start. */
  labels: Record<string, readonly string[] | typeof QUEUES>
}

/** What cbatch counts, with its help text, type and labels. */
export const METRICS = {
  cbatch_jobs_started_total: { type: 'counter', help: 'Job containers the prologue started, by queue and node role.', labels: { queue: QUEUES, node: NODE } },
  cbatch_jobs_ended_total: { type: 'counter', help: 'Job containers the epilogue removed, by queue and node role.', labels: { queue: QUEUES, node: NODE } },
  cbatch_jobs_running: { type: 'gauge', help: 'Job containers of this pbs_mom running now, by queue (set by the prologue, the epilogue and the node check).', labels: { queue: QUEUES } },
  cbatch_prologue_outcomes_total: { type: 'counter', help: 'Prologue ends: ok (the job runs), abort (refused), requeue.', labels: { hook: ['prologue', 'prologue.parallel'], outcome: ['ok', 'abort', 'requeue'] } },
  cbatch_hook_duration_seconds: { type: 'summary', help: 'Wall time of each hook run, by hook; the job starter\'s until the job shell or task starts (its own overhead, not the job\'s run).', labels: { hook: TIMED_HOOKS } },
  cbatch_image_pulls_total: { type: 'counter', help: 'Image pulls, by outcome: ok, failed, refused.', labels: { outcome: ['ok', 'failed', 'refused'] } },
  cbatch_image_pull_duration_seconds: { type: 'summary', help: 'Wall time of image pulls.', labels: {} },
  cbatch_oom_kills_total: { type: 'counter', help: 'Jobs a process of which the kernel killed for its memory, by queue.', labels: { queue: QUEUES } },
  cbatch_orphans_collected_total: { type: 'counter', help: 'Containers of jobs pbs_mom no longer knew, removed.', labels: {} },
} as const satisfies Record<string, Metric>

export type MetricName = keyof typeof METRICS
type Labels = Record<string, string>

/** One hook's worth of additions, kept in memory until it is written (flushMetrics empties it). */
export class MetricsBatch {
  counts: { name: MetricName; labels: Labels; by: number }[] = []
  observations: { name: MetricName; labels: Labels; value: number }[] = []
  /** A gauge's every series, replaced whole: those of its label values not given are 0. */
  gauges: { name: MetricName; values: { labels: Labels; value: number }[] }[] = []
  /** The config's queues: their series are written from the start. */
  queues: string[] = []

  count(name: MetricName, labels: Labels = {}, by = 1): void {
    this.counts.push({ name, labels, by })
  }

  /** A summary's observation: adds to its _sum and _count. */
  observe(name: MetricName, labels: Labels, value: number): void {
    this.observations.push({ name, labels, value })
  }

  /** Sets a gauge: these series, and 0 for every other it had. */
  set(name: MetricName, values: { labels: Labels; value: number }[]): void {
    this.gauges.push({ name, values })
  }
}

/** series key -> value; a summary keeps `<key>` _sum and _count under its own suffixes. */
type State = Record<string, number>

/** Adds a batch to the node's metrics and rewrites the textfile. Best effort: metrics never fail a job. */
export function flushMetrics(batch: MetricsBatch, textfile: string, stateDir = METRICS_STATE_DIR): void {
  const { counts, observations, gauges, queues } = batch
  batch.counts = []
  batch.observations = []
  batch.gauges = []
  if (!counts.length && !observations.length && !gauges.length) return
  const state = join(stateDir, `metrics-${createHash('sha256').update(textfile).digest('hex').slice(0, 16)}.json`)
  try {
    withLock(state, () => {
      const values = readState(state)
      for (const key of everySeries(queues)) values[key] ??= 0
      for (const c of counts) add(values, series(c.name, c.labels), c.by)
      for (const o of observations) {
        add(values, series(`${o.name}_sum`, o.labels), o.value)
        add(values, series(`${o.name}_count`, o.labels), 1)
      }
      for (const g of gauges) {
        for (const key of Object.keys(values)) if (baseOf(key) === g.name) values[key] = 0
        for (const v of g.values) values[series(g.name, v.labels)] = v.value
      }
      replaceFile(state, JSON.stringify(values), 0o600)
      // node_exporter reads it, as whoever it runs as: the one file of cbatch's others may read.
      makeRootDir(dirname(textfile), 'metrics textfile directory', 0o755)
      replaceFile(textfile, render(values), 0o644)
    })
  } catch {
    // the next hook writes them again, with its own counts
  }
}

/** The Prometheus text exposition format of the state. */
export function render(values: State): string {
  const lines: string[] = []
  for (const [name, { type, help }] of Object.entries(METRICS)) {
    // A summary's _sum and _count of one label set side by side, as parsers read them.
    const order = (key: string) => `${key.replace(/_(sum|count)(\{|$)/, '$2')} ${key}`
    const mine = Object.entries(values).filter(([key]) => baseOf(key) === name).sort(([a], [b]) => order(a).localeCompare(order(b)))
    if (!mine.length) continue
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [key, value] of mine) lines.push(`${key} ${Number(value.toFixed(6))}`)
  }
  return `${lines.join('\n')}\n`
}

/** Every series cbatch writes, given the config's queues: a summary's as its _sum and _count. */
function everySeries(queues: string[]): string[] {
  const keys: string[] = []
  for (const [name, { type, labels }] of Object.entries(METRICS) as [MetricName, Metric][]) {
    let sets: Labels[] = [{}]
    for (const [label, values] of Object.entries(labels)) {
      sets = sets.flatMap(set => (values === QUEUES ? queues : values as readonly string[]).map(value => ({ ...set, [label]: value })))
    }
    for (const set of sets) keys.push(...(type === 'summary' ? [series(`${name}_sum`, set), series(`${name}_count`, set)] : [series(name, set)]))
  }
  return keys
}

function baseOf(key: string): string {
  return key.replace(/\{.*$/, '').replace(/_(sum|count)$/, '')
}

function series(name: string, labels: Labels): string {
  const pairs = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return pairs.length ? `${name}{${pairs.join(',')}}` : name
}

function add(values: State, key: string, by: number): void {
  values[key] = (values[key] ?? 0) + by
}

function readState(file: string): State {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as State
  } catch {
    return {}
  }
}

/** Held by one process at a time (mkdir is atomic); a holder that died 10 s ago is not waited for. */
function withLock(state: string, work: () => void): void {
  makeRootDir(dirname(state), 'metrics state directory')
  const lock = `${state}.lock`
  const until = Date.now() + 2000
  for (;;) {
    try {
      mkdirSync(lock, { mode: 0o700 })
      break
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const held = statSync(lock, { throwIfNoEntry: false })
      if (held && Date.now() - held.mtimeMs > 10_000) rmdirSync(lock)
      else if (Date.now() > until) throw new Error('metrics lock busy')
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5)
    }
  }
  try {
    work()
  } finally {
    rmdirSync(lock)
  }
}

