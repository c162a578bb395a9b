// cbatch benchmark: the cost of a container per job, side by side with plain Docker, in
// one run on one engine and image. Prints tables of medians and ratios (npm run bench).
// Needs what `npm test` provisions (engine, image, user cbatchtest); run as root.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { cpus, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { emulateJob, hooksFor, writeJobFile, type EmulatedJob } from '../emulator/emulator.ts'
import { lookupUser } from '../lib/host/identity.ts'
import { apiFloor as engineFloor, busyCpuMs, median, ms, ratio, removersDone, table } from './measure.ts'

const IMAGE = 'cbatch-test/busybox:latest'
const USER = 'cbatchtest'
const SOCKET = '/var/run/docker.sock'
const HOOKS = join(import.meta.dirname, '../dist')
const REPEATS = Number(process.env.BENCH_REPEATS ?? 7)
const work = mkdtempSync(join(tmpdir(), 'cbatch-bench-'))
chmodSync(work, 0o1777)
process.on('exit', () => rmSync(work, { recursive: true, force: true }))

const config = join(work, 'cbatch.yaml')
// Where pbs_mom keeps job scripts: <PBS_HOME>/mom_priv/jobs; the hooks timed alone are installed for it.
const pbsHome = join(work, 'pbs_home')
const script = join(pbsHome, 'mom_priv/jobs/1.bench.SC')
mkdirSync(dirname(script), { recursive: true })
writeFileSync(script, '#!/bin/sh\ntrue\n')
writeFileSync(config, `log: { file: "" }\naccounting: { file: "" }\n# 64 containers starting at once take this engine longer than the default 30 s per call.\nengine: { timeout: 120 }\nqueues:\n  batch: { image: ${IMAGE}, pull: never, volumes: [{ source: ${work} }] }\n  tmp: { image: ${IMAGE}, pull: never, readOnlyRootfs: true, volumes: [{ source: ${work} }] }\n`)

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}
async function repeat(fn: () => Promise<unknown> | unknown, n = REPEATS): Promise<number> {
  return repeatMeasured(() => timed(fn), n)
}
/** Median of what `measure` says each time. */
async function repeatMeasured(measure: () => Promise<number>, n = REPEATS): Promise<number> {
  const values = []
  for (let i = 0; i < n; i++) values.push(await measure())
  return median(values)
}

/** Median time of `fn` and the machine's busy CPU per run (engine, hooks, clients: all of it). */
async function repeatWithCpu(fn: () => Promise<unknown> | unknown, n = REPEATS): Promise<[number, number]> {
  const before = busyCpuMs()
  const time = await repeat(fn, n)
  return [time, (busyCpuMs() - before) / n]
}

async function job(script: string, queue = 'batch'): Promise<EmulatedJob> {
  await removersDone()
  const file = join(work, `job-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(file, script)
  return emulateJob({ script: file, user: USER, queue, resources: 'nodes=1:ppn=1', hooksDir: HOOKS, config, workDir: work })
    .finally(() => rmSync(file, { force: true }))
}

const apiFloor = () => engineFloor(SOCKET, IMAGE)

/** ms from spawning a hook to its first engine request (a fake engine socket). */
async function startupBeforeEngine(hook: string, args: string[], env: NodeJS.ProcessEnv, stdin = ''): Promise<number> {
  // Where only root may write, as an engine socket must be (lib/host/trusted.ts).
  mkdirSync(join(work, 'run'), { recursive: true, mode: 0o755 })
  const socket = join(work, 'run', `fake-${hook}.sock`)
  const cfg = join(work, `fake-${hook}.yaml`)
  writeFileSync(cfg, `engine: { socket: ${socket}, requeuePause: 0 }\nlog: { file: "" }\nqueues:\n  batch: { image: ${IMAGE} }\n`)
  let started = 0
  let listening: () => void
  const ready = new Promise<void>(r => (listening = r))
  const first = new Promise<number>(resolve => {
    const server = createServer(c => {
      resolve(performance.now() - started)
      c.destroy()
      server.close()
    }).listen(socket, () => listening())
  })
  await ready
  started = performance.now()
  const child = spawn(join(hooksFor(HOOKS, cfg, pbsHome), hook), args, { env, stdio: ['pipe', 'ignore', 'ignore'] })
  child.stdin.end(stdin)
  const closed = new Promise(r => child.on('close', r))
  const result = await Promise.race([first, closed.then(() => { throw new Error(`${hook} ended before calling the engine`) })])
  await closed
  rmSync(socket, { force: true })
  return result
}

async function overhead() {
  const noop = '#!/bin/sh\ntrue\n'
  await job(noop) // warm caches
  const phases: Record<string, number[]> = { prologue: [], starter: [], epilogue: [], pipeline: [] }
  const cpuBefore = busyCpuMs()
  for (let i = 0; i < REPEATS; i++) {
    const j = await job(noop)
    if (j.exitStatus !== 0) throw new Error(`noop job failed: ${j.stderr}`)
    phases.prologue.push(j.prologue.ms)
    phases.starter.push(j.starterMs!)
    phases.epilogue.push(j.epilogue!.ms)
    phases.pipeline.push(j.prologue.ms + j.starterMs! + j.epilogue!.ms)
  }
  const pipelineCpu = (busyCpuMs() - cpuBefore) / REPEATS
  const [dockerRun, dockerRunCpu] = await repeatWithCpu(() => execFileSync('docker', ['run', '--rm', '--network', 'none', IMAGE, 'true']))
  const [floor, floorCpu] = await repeatWithCpu(apiFloor)
  // As the hooks start it: with an empty environment.
  const nodeAlone = await repeat(() => execFileSync(process.execPath, ['-e', '0'], { env: {} }))
  const pipeline = median(phases.pipeline)
  table('1. Per-job overhead (job: /bin/true; medians; CPU: the whole machine\'s, per job)', [
    ['what', 'time', 'pipeline / it', 'CPU'],
    ['cbatch pipeline (prologue + starter + epilogue)', ms(pipeline), '1.00', ms(pipelineCpu)],
    ['docker run --rm IMAGE true', ms(dockerRun), ratio(pipeline, dockerRun), ms(dockerRunCpu)],
    ['API floor: create+start+exec+delete on the socket', ms(floor), ratio(pipeline, floor), ms(floorCpu)],
    ['  prologue', ms(median(phases.prologue)), '', ''],
    ['  job starter', ms(median(phases.starter)), '', ''],
    ['  epilogue', ms(median(phases.epilogue)), '', ''],
  ])
  const env = { PBS_JOBID: '1.bench', PBS_JOBCOOKIE: 'BENCH', USER, PBS_QUEUE: 'batch', HOME: '/tmp' }
  const owner = await lookupUser(USER)
  writeJobFile(pbsHome, { jobId: '1.bench', queue: 'batch', owner, group: USER, resources: 'nodes=1', variables: {}, cookie: 'BENCH' })
  const hookArgs = ['1.bench', USER, USER, 'b', 'nodes=1', 'batch', '', script]
  const startups = {
    prologue: await repeatMeasured(() => startupBeforeEngine('prologue', hookArgs, {})),
    jobstarter: await repeatMeasured(() => startupBeforeEngine('jobstarter', ['/bin/sh'], env, 'true\n')),
    epilogue: await repeatMeasured(() => startupBeforeEngine('epilogue', ['1.bench', USER, USER, 'b', '0', '', '', 'batch', '', '0', script], {})),
  }
  table('   Hook start-up before its first engine call (medians)', [
    ['hook', 'time', 'of which node itself (node -e 0)'],
    ...Object.entries(startups).map(([h, t]) => [h, ms(t), ms(nodeAlone)]),
  ])
  return { pipeline, dockerRun, floor, startups, nodeAlone }
}

async function scaling() {
  await job('#!/bin/sh\ntrue\n') // warm caches (the hooks' code cache is written by their first run)
  const rows = [['jobs at once', 'all succeeded', 'wall', 'per job', 'API floor per job', 'cbatch - floor per job', 'cbatch / floor']]
  for (const n of [1, 2, 4, 8, 16, 32, 64]) {
    let ok = 0
    const wall = await timed(async () => {
      const jobs = await Promise.all(Array.from({ length: n }, () => job('#!/bin/sh\ntrue\n')))
      ok = jobs.filter(j => j.exitStatus === 0).length
      const failed = jobs.find(j => j.exitStatus !== 0)
      if (failed) console.error(`scaling, ${n} at once: job ${failed.jobId} ${failed.outcome}, exit ${failed.exitStatus}, prologue ${failed.prologue.status}: ${failed.stderr.slice(-400)}`)
    })
    const floorWall = await timed(() => Promise.all(Array.from({ length: n }, apiFloor)))
    rows.push([String(n), `${ok}/${n}`, ms(wall), ms(wall / n), ms(floorWall / n), ms((wall - floorWall) / n), ratio(wall, floorWall)])
  }
  table('2. Scaling: jobs starting at once', rows)
}

/** Writes dirty pages back and empties the page cache: each measurement starts alike. */
const dropCaches = () => spawnSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'])

/** Seconds a shell snippet takes, measured inside it with /proc/uptime (10 ms resolution). */
const clocked = (snippet: string) => `#!/bin/sh
read a _ < /proc/uptime
${snippet}
read b _ < /proc/uptime
echo "seconds=$(echo "$a $b" | awk '{print $2 - $1}')"
`
const secondsOf = (out: string) => Number(/seconds=([\d.]+)/.exec(out)?.[1])

async function jobSpeed() {
  const cpu = 'i=0; while [ $i -lt 400000 ]; do i=$((i + 1)); done'
  const write = (dir: string) => `dd if=/dev/zero of=${dir}/bench.dat bs=1M count=1024 conv=fsync 2>/dev/null; rm -f ${dir}/bench.dat`
  const writeKeep = (dir: string) => `dd if=/dev/zero of=${dir}/bench.dat bs=1M count=1024 conv=fsync 2>/dev/null`
  const read = (dir: string) => `dd if=${dir}/bench.dat of=/dev/null bs=1M 2>/dev/null; rm -f ${dir}/bench.dat`
  // The same busybox, as the same user, on the host.
  const onHost = (snippet: string) => secondsOf(execFileSync('setpriv',
    ['--reuid', USER, '--regid', USER, '--init-groups', '/bin/busybox', 'sh', '-c', clocked(snippet)], { encoding: 'utf8' }))
  const inJob = async (snippet: string, queue = 'batch') => {
    const j = await job(clocked(snippet), queue)
    if (j.exitStatus !== 0) throw new Error(j.stderr)
    return secondsOf(j.stdout)
  }
  const both = async (label: string, host: () => number, inside: () => Promise<number>, reps = 3) => {
    const h: number[] = []
    const c: number[] = []
    for (let i = 0; i < reps; i++) {
      h.push(host())
      c.push(await inside())
    }
    return [label, `${median(h).toFixed(2)} s`, `${median(c).toFixed(2)} s`, ratio(median(h), median(c))]
  }
  const ioPair = (dir: string, queue?: string) => async () => {
    await inJob(writeKeep(dir), queue)
    dropCaches()
    return inJob(read(dir), queue)
  }
  const rows = [['work', 'host', 'in the job', 'speed inside / host']]
  // Cheap, and the figure this machine moves most from run to run: more repeats.
  rows.push(await both('CPU-bound shell loop (7 runs)', () => onHost(cpu), () => inJob(cpu), 7))
  rows.push(await both('write 1 GiB to a mounted dir (fsync)', () => onHost(write(work)), () => inJob(write(work))))
  rows.push(await both('read 1 GiB from a mounted dir (cold)', () => {
    onHost(writeKeep(work))
    dropCaches()
    return onHost(read(work))
  }, ioPair(work)))
  // The host column of these two is the host's own directory, for scale.
  rows.push(await both('write 1 GiB to the overlay (/tmp of the image)', () => onHost(write(work)), () => inJob(write('/tmp'))))
  rows.push(await both('write 1 GiB to a tmpfs /tmp (readOnlyRootfs)', () => onHost(write(work)), () => inJob(write('/tmp'), 'tmp')))
  table('3. The job\'s own speed inside against on the host (medians of 3; target: ratio >= 0.95)', rows)
}

/**
 * Section 4: a job's stdout, written by the job itself into its output file. The same
 * snippet, timed inside with /proc/uptime and reporting on stderr, runs natively into a
 * file, under `docker run` (the engine's attach stream, redirected to a file) and as a
 * cbatch job (its .OU).
 */
async function outputThroughput() {
  const timedWrite = (mib: number) => `read a _ < /proc/uptime
dd if=/dev/zero bs=1M count=${mib} 2>/dev/null
read b _ < /proc/uptime
echo "seconds=$(echo "$a $b" | awk '{print $2 - $1}')" >&2
`
  const file = join(work, 'native.out')
  const native = (mib: number) => {
    const r = spawnSync('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', '/bin/busybox', 'sh', '-c', `${timedWrite(mib)}`],
      { stdio: ['ignore', openSync(file, 'w'), 'pipe'], encoding: 'utf8' })
    rmSync(file, { force: true })
    return secondsOf(r.stderr)
  }
  const dockerRun = (mib: number) => {
    const r = spawnSync('docker', ['run', '--rm', '--network', 'none', '--user', `${owner!.uid}:${owner!.gid}`, IMAGE, 'sh', '-c', timedWrite(mib)],
      { stdio: ['ignore', openSync(file, 'w'), 'pipe'], encoding: 'utf8' })
    rmSync(file, { force: true })
    return secondsOf(r.stderr)
  }
  const cbatch = async (mib: number) => {
    const j = await job(`#!/bin/sh
${timedWrite(mib)}`)
    if (j.exitStatus !== 0) throw new Error(j.stderr)
    return secondsOf(j.stderr)
  }
  const owner = await lookupUser(USER)
  const rate = (mib: number, seconds: number) => `${(mib / seconds).toFixed(0)} MiB/s`
  const rows = [['output', 'natively into a file', 'docker run into a file', 'cbatch job (.OU)', 'cbatch / native', 'cbatch / docker run']]
  for (const mib of [256, 1024]) {
    const n: number[] = [], d: number[] = [], c: number[] = []
    for (let i = 0; i < 5; i++) { // alternating, five of each, each from an empty page cache
      dropCaches()
      n.push(native(mib))
      dropCaches()
      d.push(dockerRun(mib))
      dropCaches()
      c.push(await cbatch(mib))
    }
    const [tn, td, tc] = [median(n), median(d), median(c)]
    rows.push([`${mib} MiB to stdout`, rate(mib, tn), rate(mib, td), rate(mib, tc), ratio(tn, tc), ratio(td, tc)])
  }
  table('4. A job\'s stdout into its output file (rates: medians of 5, timed inside the job to 10 ms; target cbatch / native >= 0.9)', rows)
}

/**
 * A reader of its stdin to the end, in a process of its own (not this one, with its module
 * graph and heap): it prints the bytes read and when the last came, in seconds since boot as
 * the job's `read a _ < /proc/uptime` gives them (uptime read once, the monotonic clock since).
 */
const READER = `const { readFileSync } = require('node:fs')
const offset = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) - performance.now() / 1000
let bytes = 0, last = 0
process.stdin.on('data', chunk => { bytes += chunk.length; last = offset + performance.now() / 1000 })
process.stdin.on('end', () => process.stdout.write(JSON.stringify({ bytes, last })))`

/**
 * Runs `command` with its stdout a pipe to READER. The rate: what it printed over the time
 * from the job's first write (its own clock, `start=` on its stderr) to the last byte read.
 */
function readAll(command: string, args: string[]): Promise<{ mib: number; seconds: number; status: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const reader = spawn(process.execPath, ['-e', READER], { stdio: [child.stdout, 'pipe', 'inherit'] })
    let stderr = ''
    let read = ''
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
    reader.stdout.on('data', (chunk: Buffer) => (read += chunk))
    child.on('error', reject)
    reader.on('error', reject)
    // The job's stdout is the reader's: the job has ended once it exited and its stderr closed.
    Promise.all([once(child, 'exit'), once(child.stderr, 'close'), once(reader, 'close')]).then(([[status]]) => {
      const start = Number(/start=([\d.]+)/.exec(stderr)?.[1])
      if (!Number.isFinite(start)) return reject(new Error(`${command}: no start= on its stderr: ${stderr.slice(-500)}`))
      const { bytes, last } = JSON.parse(read) as { bytes: number; last: number }
      resolve({ mib: bytes / 1024 ** 2, seconds: Math.max(last - start, 0.01), status: status as number | null })
    }, reject)
  })
}

/**
 * Section 6: `cbatch run --follow`, which copies the job's .OU to its own stdout as the file
 * grows, against the same job run natively with its stdout a pipe to the same reader.
 */
async function followThroughput() {
  const mib = 256
  const body = `read a _ < /proc/uptime
echo "start=$a" >&2
dd if=/dev/zero bs=1M count=${mib} 2>/dev/null
`
  const file = join(work, 'follow.sh')
  writeFileSync(file, `#!/bin/sh\n${body}`, { mode: 0o755 })
  const native = () => readAll('setpriv', ['--reuid', USER, '--regid', USER, '--init-groups', '/bin/busybox', 'sh', '-c', body])
  const follow = () => readAll(join(HOOKS, 'cbatch'), ['run', file, '--follow', '--user', USER, '--config', config, '--workdir', work])
  const n: number[] = [], c: number[] = []
  for (let i = 0; i < 5; i++) { // alternating, each from an empty page cache
    for (const [way, into] of [[native, n], [follow, c]] as const) {
      await removersDone()
      dropCaches()
      const r = await way()
      if (r.status !== 0 || Math.round(r.mib) !== mib) throw new Error(`follow bench: exit ${r.status}, ${r.mib} MiB read`)
      into.push(mib / r.seconds)
    }
  }
  const rate = (x: number) => `${x.toFixed(0)} MiB/s`
  table('6. The job\'s output read as it is written (medians of 5: its size over the job\'s first write to the last byte read; target cbatch / native >= 0.5)', [
    ['output', 'natively, stdout a pipe', '`cbatch run --follow`', 'cbatch / native'],
    [`${mib} MiB`, rate(median(n)), rate(median(c)), ratio(median(c), median(n))],
  ])
}

/** Proportional set size of a process, kB (its share of what it shares with others). */
function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0)
  } catch {
    return 0 // gone meanwhile
  }
}

/** Processes whose command line matches, and those of the engine, by name. */
function pids(match: (cmdline: string, comm: string, uid: number) => boolean): number[] {
  const found: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ')
      const comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim()
      if (match(cmdline, comm, statSync(`/proc/${entry}`).uid)) found.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return found
}

const sumPss = (ps: number[]) => ps.reduce((sum, pid) => sum + pssKb(pid), 0)
const engineDaemons = () => pids((_, comm) => comm === 'dockerd' || comm === 'containerd')
const shims = () => pids((_, comm) => comm.startsWith('containerd-shim'))
const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`

/**
 * Section 5: the node's memory per running job. N jobs sleep at once; what is resident
 * for them is read from /proc (PSS, so shared pages are counted once across processes):
 * each job's starter, the engine's shim per container, the container's holder (init and
 * its sleep, uid 65534), and what the engine daemons grew by.
 */
async function memoryPerJob() {
  const n = 8
  await job('#!/bin/sh\ntrue\n') // warm
  const daemonsBefore = sumPss(engineDaemons())
  const jobs = Promise.all(Array.from({ length: n }, () => job('#!/bin/sh\nsleep 15\n')))
  let starters: number[] = []
  for (let waited = 0; waited < 60_000 && starters.length < n; waited += 250) {
    await new Promise(r => setTimeout(r, 250))
    starters = pids(cmdline => cmdline.includes('load.cjs jobstarter'))
  }
  await new Promise(r => setTimeout(r, 2000)) // every job shell running, the starters settled
  const holders = pids((cmdline, comm, uid) => uid === 65534 && (comm === 'docker-init' || cmdline.startsWith('sleep infinity')))
  const measured = {
    starter: sumPss(pids(cmdline => cmdline.includes('load.cjs jobstarter'))) / n,
    shim: sumPss(shims()) / n,
    holder: sumPss(holders) / n,
    daemons: (sumPss(engineDaemons()) - daemonsBefore) / n,
  }
  const done = await jobs
  if (done.some(j => j.exitStatus !== 0)) throw new Error('a sleeping job failed')
  const total = measured.starter + measured.shim + measured.holder + measured.daemons
  table(`5. Memory per running job (${n} jobs sleeping at once; PSS)`, [
    ['what', 'per job'],
    ['job starter (node)', mib(measured.starter)],
    ['engine: containerd shim', mib(measured.shim)],
    ['engine: container init and holder', mib(measured.holder)],
    ['engine: dockerd + containerd growth', mib(measured.daemons)],
    ['total on the node', mib(total)],
  ])
}

console.log(`cbatch benchmark — ${new Date().toISOString()}`)
console.log(`machine: ${cpus().length} x ${cpus()[0].model}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB; ${execFileSync('docker', ['version', '-f', 'Docker Engine {{.Server.Version}}, API {{.Server.APIVersion}}'], { encoding: 'utf8' }).trim()}; node ${process.version}; ${REPEATS} repeats`)
// BENCH_ONLY=overhead,scaling,speed,output,follow,memory picks sections.
const only = (process.env.BENCH_ONLY ?? 'overhead,scaling,speed,output,follow,memory').split(',')
if (only.includes('overhead')) await overhead()
if (only.includes('scaling')) await scaling()
if (only.includes('speed')) await jobSpeed()
if (only.includes('output')) await outputThroughput()
if (only.includes('follow')) await followThroughput()
if (only.includes('memory')) await memoryPerJob()
