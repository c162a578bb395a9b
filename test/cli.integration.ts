// The cbatch CLI explains itself, refuses usage mistakes with one line and exit 64, and
// its operator commands (config, ps) say what the node has.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { closeSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CBATCH, preparedJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'
import { DEFAULT_PBS_HOME } from '../emulator/emulator.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const cbatch = (...args: string[]) => spawnSync(CBATCH, args, { encoding: 'utf8' })
const version = (JSON.parse(spawnSync('cat', ['package.json'], { encoding: 'utf8' }).stdout) as { version: string }).version

t.test('--version, --help, and every command\'s --help with examples', async t => {
  t.same([cbatch('--version').status, cbatch('--version').stdout], [0, `cbatch ${version}\n`])
  const help = cbatch('--help')
  t.equal(help.status, 0)
  for (const command of ['run', 'gc', 'images', 'config', 'ps', 'doctor', 'logs']) {
    t.match(help.stdout, new RegExp(`^  ${command} `, 'm'), `the overview names ${command}`)
    const own = cbatch(command, '--help')
    t.equal(own.status, 0, command)
    t.match(own.stdout, new RegExp(`^usage: cbatch ${command}`), command)
    t.match(own.stdout, /\nexamples:\n  cbatch /, `${command} has examples`)
  }
})

t.test('usage mistakes: one line, exit 64', async t => {
  for (const args of [[], ['bogus'], ['ps', '--bogus'], ['run'], ['images', 'bogus', '--config', '/nonexistent'], ['config', 'frobnicate']]) {
    const r = cbatch(...args)
    t.equal(r.status, 64, args.join(' '))
    if (args.length) t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: ${r.stderr}`)
  }
})

t.test('config check: every problem as file:line:column: dot.path: message; config show: the effective policy', async t => {
  const bad = join(shared.path, 'bad.yaml')
  writeFileSync(bad, 'engine:\n  timeout: -1\nqueues:\n  a:\n    image: x\n    pull: often\n  b:\n    network: bridge\n')
  const r = cbatch('config', 'check', bad)
  t.equal(r.status, 1)
  t.same(r.stdout.trim().split('\n'), [
    `${bad}:2:12: engine.timeout: Expected number to be greater than 0`,
    `${bad}:6:11: queues.a.pull: "often" is not one of missing, always, never`,
    `${bad}:8:5: queues.b.image: no image: set queues.b.image or defaults.image`,
    `${bad}:8:14: queues.b.network: "bridge" is not one of none, host`,
  ], 'every problem at once, in the file\'s order')
  const good = writeConfig(shared.path, `defaults: { pidsLimit: 64 }\nqueues:\n  batch: { image: ${TEST_IMAGE} }\n`)
  t.match(cbatch('config', 'check', good), { status: 0, stdout: `${good}: valid, queues batch\n` })
  const shown = cbatch('config', 'show', '--config', good, '--queue', 'batch')
  t.equal(shown.status, 0)
  t.match(JSON.parse(shown.stdout), { image: TEST_IMAGE, pidsLimit: 64, pull: 'missing', readOnlyRootfs: true })
  t.equal(cbatch('config', 'show', '--config', good, '--queue', 'nope').status, 64)
  t.same(JSON.parse(cbatch('config', 'show', good, '--queue', 'batch').stdout), JSON.parse(shown.stdout), 'show FILE takes what check FILE takes')
  const none = writeConfig(shared.path, 'queues: {}\n')
  t.match(cbatch('config', 'check', none), { status: 0, stdout: `${none}: valid, queues (none: every job runs natively)\n${none}:1:9: queues: no queue: every job runs natively, outside containers [queues-none] (warning)\n` })
  const missing = join(shared.path, 'missing.yaml')
  t.match(cbatch('config', 'check', missing), { status: 1, stdout: `${missing}: not found\n` })
  t.match(cbatch('config', 'show', '--config', missing), { status: 125, stderr: `cbatch: no cbatch config: ${missing}: not found\n` })
})

t.test('run: a queue the config does not name is a usage mistake, not a native job', async t => {
  const config = writeConfig(shared.path, `queues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const script = join(shared.path, 'typo.sh')
  writeFileSync(script, '#!/bin/sh\necho ran\n', { mode: 0o644 })
  const r = cbatch('run', script, '--user', TEST_USER, '--queue', 'bacth', '--config', config)
  t.match(r, { status: 64, stdout: '', stderr: `cbatch: --queue bacth: not a queue of ${config} (batch); --native-queue runs it natively, as pbs_mom would\n` })
})

t.test('ps: the job containers of two owners, with what they use now and whether pbs_mom knows them', async t => {
  const yaml = `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, limits: { defaultMem: 64mb } }\n`
  const config = writeConfig(shared.path, yaml)
  await preparedJob(t, `${process.pid}01.cli`, yaml, 'batch')
  await preparedJob(t, `${process.pid}02.cli`, yaml, 'batch', { user: 'cbatchdemo', known: false })
  const r = cbatch('ps', '--json', '--config', config, '--pbs-home', DEFAULT_PBS_HOME)
  t.equal(r.status, 0, r.stderr)
  const mine = (JSON.parse(r.stdout) as { job: string }[]).filter(j => j.job.endsWith('.cli'))
  t.match(mine.sort((a, b) => a.job.localeCompare(b.job)), [
    { job: `${process.pid}01.cli`, user: TEST_USER, queue: 'batch', image: TEST_IMAGE, state: 'running', mom: `${DEFAULT_PBS_HOME}/mom_priv`, knownToMom: true, memoryLimitBytes: 64 * 1024 ** 2 },
    { job: `${process.pid}02.cli`, user: 'cbatchdemo', knownToMom: false },
  ])
  t.ok((mine[0] as { memoryBytes?: number }).memoryBytes! > 0, 'memory in use, from its cgroup')
  const table = cbatch('ps', '--config', config, '--pbs-home', DEFAULT_PBS_HOME)
  t.match(table.stdout, /^JOB +OWNER +QUEUE +IMAGE +STATE +AGE +CPU +MEMORY +MOM +JOB FILE$/m)
  t.match(table.stdout, new RegExp(`^${process.pid}02\\.cli +cbatchdemo +batch .* ${DEFAULT_PBS_HOME}/mom_priv +unknown$`, 'm'))
})

t.test('logs: one job\'s lines across its hooks, with each hook\'s time and its engine calls', async t => {
  const log = join(shared.path, 'jobs.log')
  const config = writeConfig(shared.path, `log: { file: ${log} }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const script = join(shared.path, 'logged.sh')
  writeFileSync(script, '#!/bin/sh\ntrue\n', { mode: 0o644 })
  const run = spawnSync(CBATCH, ['run', script, '--json', '--user', TEST_USER, '--config', config, '--workdir', shared.path], { encoding: 'utf8' })
  const jobId = (JSON.parse(run.stdout) as { jobId: string }).jobId
  const r = cbatch('logs', jobId, '--config', config)
  t.equal(r.status, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  // Each hook's lines in the order they ran (the detached remover's may come after the epilogue's, or not yet).
  const hooks = lines.map(l => l.split(' ')[1].replace(/\[\d+\]$/, '')).filter(h => h !== 'remover')
  t.same(hooks.filter((h, i) => h !== hooks[i - 1]), ['prologue', 'jobstarter', 'epilogue'])
  t.match(r.stdout, /prologue\[\d+\] info exit 0 \(hook \d+ ms; engine calls \d+ ms in all/)
  const json = cbatch('logs', jobId, '--config', config, '--json').stdout.trim().split('\n').map(l => JSON.parse(l))
  t.ok(json.every(l => l.job === jobId))
  t.match(json.find(l => l.hook === 'epilogue' && l.calls), { calls: [{ call: /^inspect container cbatch-/, ms: Number }] })
})

/** Runs `cbatch run` on a script; what it printed, counted as it came (never held whole). */
function runCounting(text: string, ...args: string[]): Promise<{ status: number | null; bytes: number; head: string; tail: string; firstAt: number; endedAt: number; stderr: string }> {
  const config = writeConfig(shared.path, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const script = join(shared.path, `s-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(script, text, { mode: 0o644 })
  const child = spawn(CBATCH, ['run', script, '--user', TEST_USER, '--config', config, '--workdir', shared.path, ...args])
  let bytes = 0
  let head = ''
  let tail = ''
  let firstAt = 0
  let stderr = ''
  const started = performance.now()
  child.stdout.on('data', (d: Buffer) => {
    if (!bytes) firstAt = performance.now() - started
    if (head.length < 100) head += d.subarray(0, 100).toString()
    tail = (tail + d.subarray(-1000).toString()).slice(-1000)
    bytes += d.length
  })
  child.stderr.on('data', d => (stderr += d))
  return new Promise(resolve => child.on('close', status => resolve({ status, bytes, head, tail, firstAt, endedAt: performance.now() - started, stderr })))
}

t.test('run --follow prints the job\'s output while it runs', async t => {
  const r = await runCounting('#!/bin/sh\necho first\nsleep 3\necho last\n', '--follow')
  t.equal(r.status, 0, r.stderr)
  t.match(r.head, /^first\n/)
  t.ok(r.endedAt - r.firstAt > 2000, `the first line came ${Math.round(r.endedAt - r.firstAt)} ms before the end`)
})

t.test('run of a job that prints 1 GiB: all of it with --follow; without, its first 64 MiB and the file that keeps all of it', async t => {
  const gib = 1024 ** 3
  const job = '#!/bin/sh\ndd if=/dev/zero bs=1M count=1024 2>/dev/null | tr "\\0" x\n'
  const followed = await runCounting(job, '--follow')
  t.equal(followed.status, 0, followed.stderr)
  t.ok(followed.bytes >= gib && followed.bytes < gib + 200, `${followed.bytes} bytes`)
  const plain = await runCounting(job)
  t.equal(plain.status, 0, plain.stderr)
  t.ok(plain.bytes > 64 * 1024 ** 2 && plain.bytes < 65 * 1024 ** 2, 'its first 64 MiB')
  // Nothing lost: the whole output, the summary line at its end too, stays where the note says.
  const kept = /all of it \(its end too\) is kept in (\S+)\]\n$/.exec(plain.tail)?.[1]
  t.ok(kept, 'the note says where all of it is')
  t.teardown(() => rmSync(kept!, { force: true }))
  const size = statSync(kept!).size
  t.ok(size > gib && size < gib + 400, `${size} bytes kept`)
  const end = Buffer.alloc(300)
  const fd = openSync(kept!, 'r')
  readSync(fd, end, 0, 300, size - 300)
  closeSync(fd)
  t.match(end.toString(), /x\ncbatch: cpu [^\n]*, exit 0\n$/, 'the summary line on its own line after a last line without a newline')
  t.equal(spawnSync(CBATCH, ['run', '--follow', '--json', 'x.sh'], { encoding: 'utf8' }).status, 64, '--follow and --json are one or the other')
})
