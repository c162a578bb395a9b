// cbatch on a real TORQUE: the same jobs through queue `batch` (pbs_mom runs cbatch's hooks)
// and queue `unmanaged` (pbs_mom runs them natively), alternating on node vm, in one run:
// only ratios measured side by side mean much on a shared 2-core machine.
// Needs the real-TORQUE tier (scripts/torque/tier.sh) and root; `npm run bench:torque`.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { apiFloor, busyCpuMs, median, ms, ratio, table } from './measure.ts'

const OWNER = 'cbatchtest'
const NODE = 'vm'
const SOCKET = '/var/run/docker.sock'
const IMAGE = 'cbatch-test/torque:latest'
const NODE_LOG = '/var/log/cbatch-tier/vm.log'
const REPEATS = Number(process.env.BENCH_REPEATS ?? 7)
const QUEUES = { native: 'unmanaged', cbatch: 'batch' } as const
type Way = keyof typeof QUEUES

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

/** Turnaround of `n` jobs submitted at once (ms, qsub until all complete) and the machine's busy CPU per job. */
async function burst(way: Way, script: string, n: number): Promise<{ ms: number; cpuMs: number; jobs: string[] }> {
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
    native: { ms: [], cpuMs: [], jobs: [] }, cbatch: { ms: [], cpuMs: [], jobs: [] },
  }
  for (let i = 0; i < repeats; i++) {
    for (const way of (i % 2 ? ['cbatch', 'native'] : ['native', 'cbatch']) as Way[]) {
      beforeEach()
      const r = await burst(way, script, n)
      runs[way].ms.push(r.ms)
      runs[way].cpuMs.push(r.cpuMs)
      runs[way].jobs.push(...r.jobs)
    }
  }
  return {
    native: { ms: median(runs.native.ms), cpuMs: median(runs.native.cpuMs) },
    cbatch: { ms: median(runs.cbatch.ms), cpuMs: median(runs.cbatch.cpuMs) },
    cbatchJobs: runs.cbatch.jobs,
  }
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

await sideBySide(noop, 1, 1) // warm: the hooks write their code cache on their first run
const one = await sideBySide(noop, 1, REPEATS)
const eight = await sideBySide(noop, 8, Math.max(3, Math.ceil(REPEATS / 2)))
const floorCpu = busyCpuMs()
const floorMs: number[] = []
for (let i = 0; i < REPEATS; i++) {
  const t = performance.now()
  await apiFloor(SOCKET, IMAGE)
  floorMs.push(performance.now() - t)
}
const floor = { ms: median(floorMs), cpuMs: (busyCpuMs() - floorCpu) / REPEATS }
const output = await sideBySide(heavy, 1, 3, dropCaches)

table('Turnaround, qsub until the job is complete (medians; CPU: the whole machine\'s per job, qstat polling included for both)', [
  ['job', 'native', 'cbatch', 'cbatch / native', 'CPU native', 'CPU cbatch', 'goal'],
  ['no-op, one at a time', ms(one.native.ms), ms(one.cbatch.ms), ratio(one.cbatch.ms, one.native.ms), ms(one.native.cpuMs), ms(one.cbatch.cpuMs), '<= 1.15'],
  ['no-op, 8 at once', ms(eight.native.ms), ms(eight.cbatch.ms), ratio(eight.cbatch.ms, eight.native.ms), ms(eight.native.cpuMs), ms(eight.cbatch.cpuMs), '<= 1.3'],
  [`${GIB} MiB to stdout`, ms(output.native.ms), ms(output.cbatch.ms), ratio(output.cbatch.ms, output.native.ms), ms(output.native.cpuMs), ms(output.cbatch.cpuMs), '<= 1.2'],
])
const added = eight.cbatch.cpuMs - eight.native.cpuMs
const hooks = hookCpu([...one.cbatchJobs, ...eight.cbatchJobs])
table('Machine CPU a cbatch job adds (8 at once), against the bare engine calls (create, start, exec, remove on the socket)', [
  ['what', 'CPU per job', 'time'],
  ['cbatch job - native job', ms(added), ''],
  ['bare engine calls', ms(floor.cpuMs), ms(floor.ms)],
  ['ratio (goal <= 1.5)', ratio(added, floor.cpuMs), ''],
  ...[...hooks].map(([hook, cpu]) => [`  ${hook}: its own CPU and its children's`, ms(cpu), '']),
])
