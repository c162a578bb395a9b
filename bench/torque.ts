// cbatch on a real TORQUE: the same jobs through queue `batch` (pbs_mom runs cbatch's hooks)
// and queue `unmanaged` (pbs_mom runs them natively), alternating on node vm, in one run:
// only ratios measured side by side mean much on a shared 2-core machine.
// Needs the real-TORQUE tier (scripts/torque/tier.sh) and root; `npm run bench:torque`.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { apiFloor, busyCpuMs, median, ms, ratio, removersDone, table } from './measure.ts'

const OWNER = 'cbatchtest'
const NODE = 'vm'
const SOCKET = '/var/run/docker.sock'
const IMAGE = 'cbatch-test/torque:latest'
const NODE_LOG = '/var/log/cbatch-tier/vm.log'
const REPEATS = Number(process.env.BENCH_REPEATS ?? 7)
// BENCH_BEFORE: another build's cbatch.d (dist/cbatch.d of an earlier commit), run as a third
// way, moved into mom_priv for its jobs only (same filesystem): before and after in one run.
const BEFORE = process.env.BENCH_BEFORE
const QUEUES = { native: 'unmanaged', cbatch: 'batch', before: 'batch' } as const
type Way = keyof typeof QUEUES
const WAYS: Way[] = BEFORE ? ['native', 'cbatch', 'before'] : ['native', 'cbatch']
const BUNDLES = '/var/spool/torque/mom_priv/cbatch.d'

if (spawnSync('qstat', ['-B'], { stdio: 'ignore' }).status !== 0) {
  console.error('bench/torque: no TORQUE answers here; set up the real-TORQUE tier first (scripts/torque/tier.sh)')
  process.exit(2)
}

const id = (flag: '-u' | '-g') => Number(execFileSync('id', [flag, OWNER], { encoding: 'utf8' }))
const [uid, gid] = [id('-u'), id('-g')]
const base = join('/home', OWNER, 'cbatch-bench')
mkdirSync(base, { recursive: true })
chownSync(base, uid, gid)
const work = mkdtempSync(join(base, 'run-'))
chownSync(work, uid, gid)
process.on('exit', () => rmSync(work, { recursive: true, force: true }))
const sleep = (t: number) => new Promise(r => setTimeout(r, t))
let serial = 0

/** Submits `script` as the owner to the way's queue on node vm; its output lands in `work`. */
function submit(way: Way, script: string): string {
  const n = ++serial
  const file = join(work, `job-${n}.sh`)
  writeFileSync(file, script, { mode: 0o755 })
  chownSync(file, uid, gid)
  const r = spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--init-groups', '--reset-env', '--',
    'qsub', '-q', QUEUES[way], '-l', `nodes=${NODE}:ppn=1`, '-d', work, '-o', join(work, `${n}.out`), '-e', join(work, `${n}.err`), file],
  { encoding: 'utf8', cwd: work, env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: `/home/${OWNER}`, USER: OWNER } })
  if (r.status !== 0) throw new Error(`qsub failed: ${r.stderr}`)
  return r.stdout.trim()
}

/** Job id -> state, for every job the server knows (it keeps completed ones: tier.sh). */
function states(): Map<string, string> {
  const out = spawnSync('qstat', ['-f'], { encoding: 'utf8', maxBuffer: 64 << 20 }).stdout ?? ''
  const result = new Map<string, string>()
  for (const block of out.split(/\n(?=Job Id: )/)) {
    const job = /^Job Id: (\S+)/.exec(block)?.[1]
    const state = /job_state = (\w)/.exec(block)?.[1]
    if (job && state) result.set(job, state)
  }
  return result
}

/** Waits, polling every 100 ms, until every job is complete; throws on a failed one. */
async function completed(jobs: string[], timeoutMs = 600_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!jobs.every(j => states().get(j) === 'C')) {
    if (Date.now() > until) throw new Error(`jobs ${jobs.join(' ')} did not complete in ${timeoutMs} ms`)
    await sleep(100)
  }
  for (const job of jobs) {
    const exit = /exit_status = (-?\d+)/.exec(execFileSync('qstat', ['-f', job], { encoding: 'utf8' }))?.[1]
    if (exit !== '0') throw new Error(`job ${job} exited ${exit}`)
  }
}

/** The build a way runs: BENCH_BEFORE's swapped in for 'before' (the installed one is kept aside meanwhile). */
function use(way: Way): void {
  if (!BEFORE) return
  const swapped = existsSync(`${BUNDLES}.after`)
  if ((way === 'before') === swapped) return
  // Moved, not copied: each build keeps the code caches and validated config its hooks write.
  if (way === 'before') {
    renameSync(BUNDLES, `${BUNDLES}.after`)
    renameSync(BEFORE, BUNDLES)
  } else {
    renameSync(BUNDLES, BEFORE)
    renameSync(`${BUNDLES}.after`, BUNDLES)
  }
}

/** Turnaround of `n` jobs submitted at once (ms, qsub until all complete) and the machine's busy CPU per job. */
async function burst(way: Way, script: string, n: number): Promise<{ ms: number; cpuMs: number; jobs: string[] }> {
  // No burst pays for another's removals, nor runs beside another build's remover.
  await removersDone('cbatch.mom=/var/spool/torque/mom_priv')
  use(way)
  const cpu = busyCpuMs()
  const began = performance.now()
  const jobs = Array.from({ length: n }, () => submit(way, script))
  await completed(jobs)
  return { ms: performance.now() - began, cpuMs: (busyCpuMs() - cpu) / n, jobs }
}

/** Writes dirty pages back and empties the page cache: each measurement starts alike. */
const dropCaches = () => spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'])

/** Medians of `repeats` alternating runs of both ways (which goes first alternates too). */
async function sideBySide(script: string, n: number, repeats: number, beforeEach = () => {}) {
  const runs: Record<Way, { ms: number[]; cpuMs: number[]; jobs: string[] }> = {
    native: { ms: [], cpuMs: [], jobs: [] }, cbatch: { ms: [], cpuMs: [], jobs: [] }, before: { ms: [], cpuMs: [], jobs: [] },
  }
  for (let i = 0; i < repeats; i++) {
    for (const way of i % 2 ? [...WAYS].reverse() : WAYS) {
      beforeEach()
      const r = await burst(way, script, n)
      runs[way].ms.push(r.ms)
      runs[way].cpuMs.push(r.cpuMs)
      runs[way].jobs.push(...r.jobs)
    }
  }
  const of = (way: Way) => ({ ms: median(runs[way].ms), cpuMs: median(runs[way].cpuMs), jobs: runs[way].jobs })
  return { native: of('native'), cbatch: of('cbatch'), before: of('before') }
}

/** Each hook's CPU (its own and its children's) for these jobs, from the node log's `exit` lines: medians. */
function hookCpu(jobs: string[]): Map<string, number> {
  const wanted = new Set(jobs)
  const byHook = new Map<string, number[]>()
  for (const line of readFileSync(NODE_LOG, 'utf8').split('\n')) {
    // Each hook's last line, and the detached remover's (hooks/remover.ts).
    if (!line.includes('"exit ') && !line.includes('"hook":"remover"')) continue
    const entry = JSON.parse(line) as { hook: string; job: string; message: string; cpuMs?: number }
    if (!wanted.has(entry.job) || entry.cpuMs === undefined) continue
    byHook.set(entry.hook, [...(byHook.get(entry.hook) ?? []), entry.cpuMs])
  }
  return new Map([...byHook].map(([hook, values]) => [hook, median(values)]))
}

const noop = '#!/bin/sh\ntrue\n'
const GIB = 1024
const heavy = `#!/bin/sh\ndd if=/dev/zero bs=1M count=${GIB} 2>/dev/null\n`

console.log(`cbatch on a real TORQUE — ${new Date().toISOString()}`)
console.log(`machine: ${cpus().length} x ${cpus()[0].model}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB; ${
  execFileSync('pbsnodes', ['-a', NODE], { encoding: 'utf8' }).match(/np = \d+/)?.[0]} on node ${NODE}; ${REPEATS} repeats; node ${process.version}`)

// BENCH_ONLY=one,eight,output picks sections.
const only = (process.env.BENCH_ONLY ?? 'one,eight,output').split(',')
await sideBySide(noop, 1, 1) // warm: the hooks write their code cache on their first run
const one = only.includes('one') ? await sideBySide(noop, 1, REPEATS) : undefined
const eight = only.includes('eight') ? await sideBySide(noop, 8, Math.max(3, Math.ceil(REPEATS / 2))) : undefined
const floorCpu = busyCpuMs()
const floorMs: number[] = []
for (let i = 0; eight && i < REPEATS; i++) {
  const t = performance.now()
  await apiFloor(SOCKET, IMAGE)
  floorMs.push(performance.now() - t)
}
const floor = { ms: median(floorMs), cpuMs: (busyCpuMs() - floorCpu) / REPEATS }
const output = only.includes('output') ? await sideBySide(heavy, 1, 5, dropCaches) : undefined

use('cbatch') // the installed build back in place
type Side = Awaited<ReturnType<typeof sideBySide>>
const rows = (label: string, r: Side | undefined, goal: string) => r ? [
  [label, ms(r.native.ms), ms(r.cbatch.ms), ratio(r.cbatch.ms, r.native.ms), ms(r.native.cpuMs), ms(r.cbatch.cpuMs), goal],
  ...(BEFORE ? [[`  the same, before (BENCH_BEFORE)`, '', ms(r.before.ms), ratio(r.before.ms, r.native.ms), '', ms(r.before.cpuMs), '']] : []),
] : []
table('Turnaround, qsub until the job is complete (medians; CPU: the whole machine\'s per job, qstat polling and whatever else runs on the machine included)', [
  ['job', 'native', 'cbatch', 'cbatch / native', 'CPU native', 'CPU cbatch', 'goal'],
  ...rows('no-op, one at a time', one, '<= 1.15'),
  ...rows('no-op, 8 at once', eight, '<= 1.3'),
  ...rows(`${GIB} MiB to stdout`, output, '<= 1.2'),
])
const jobsOf = (...sides: (Side | undefined)[]) => (way: Way) => sides.flatMap(side => side?.[way].jobs ?? [])
const noops = jobsOf(one, eight)
const hooks = hookCpu(noops('cbatch'))
const hooksBefore = hookCpu(noops('before'))
const heavyHooks = hookCpu(jobsOf(output)('cbatch'))
const added = eight ? eight.cbatch.cpuMs - eight.native.cpuMs : NaN
table('Machine CPU a cbatch job adds (8 at once), against the bare engine calls (create, start, exec, remove on the socket)', [
  ['what', 'CPU per job', BEFORE ? 'before' : '', 'time'],
  ...(eight ? [
    ['cbatch job - native job', ms(added), BEFORE ? ms(eight.before.cpuMs - eight.native.cpuMs) : '', ''],
    ['bare engine calls', ms(floor.cpuMs), '', ms(floor.ms)],
    ['ratio (goal <= 1.5)', ratio(added, floor.cpuMs), '', ''],
  ] : []),
  ...[...hooks].map(([hook, cpu]) => [`  ${hook}: its own CPU and its children's (no-op jobs)`, ms(cpu), hooksBefore.has(hook) ? ms(hooksBefore.get(hook)!) : '', '']),
  ...[...heavyHooks].map(([hook, cpu]) => [`  ${hook} (${GIB} MiB jobs)`, ms(cpu), '', '']),
])
