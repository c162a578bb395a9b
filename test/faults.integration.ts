// Faults, signals and cleanup: nothing is lost, nothing is left behind.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { parseConfig } from '../lib/policy/parse.ts'
import { ENGINE_SOCKET, engineCli, TEST_ENGINE, testEngine } from './helpers/engine.ts'
import { emulateJob } from '../emulator/emulator.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { prepareJob } from '../lib/job/prologue.ts'
import { privateEngine } from '../emulator/engines.ts'
import { containersLeft, containersOf, PROLOGUE, runHook, runJob, sharedDir, testConfig, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'
import { jobContext } from '../lib/torque/job.ts'
import { pbsMom } from '../lib/torque/mom.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const config = testConfig(shared.path, `    volumes: [{ source: ${shared.path} }]\naccounting: { file: ${shared.path}/accounting.jsonl }\n`)
const waitFor = async (path: string) => {
  for (let i = 0; i < 150 && !existsSync(path); i++) await new Promise(r => setTimeout(r, 100))
  if (!existsSync(path)) throw new Error(`${path} never appeared`)
}
const facts = (jobId: string) => jobContext({ jobId, user: TEST_USER, group: '', jobName: 'f', resources: '', queue: 'batch', account: '' }, {})

t.test('a walltime kill reaches the job in its container: SIGTERM it may trap, then SIGKILL', async t => {
  const { job } = await runJob(`#!/bin/sh
trap 'echo "TERM at walltime: saving state"; exit 9' TERM
sleep 30 &
wait
`, { config, resources: 'nodes=1:ppn=1,walltime=00:00:02' })
  t.equal(job.exitStatus, -11, 'pbs_mom reports a walltime kill')
  t.match(job.stderr, '=>> PBS: job killed: walltime 3 exceeded limit 2\n')
  t.match(job.stdout, 'TERM at walltime: saving state\n', 'the trap ran inside the container; its output is kept')
  t.same(await containersLeft(job.jobId), [])
})

t.test('a job that ignores SIGTERM is gone after kill_delay; the epilogue removes its container', async t => {
  const marker = join(shared.path, 'stubborn')
  let started = 0
  const { job } = await runJob(`#!/bin/sh\ntrap '' TERM\ntouch ${marker}\necho before\nsleep 60\necho not-reached\n`, {
    config, onStart: pid => waitFor(marker).then(() => { started = Date.now(); process.kill(pid, 'SIGTERM') }),
  })
  // The script ignores SIGTERM; the job shell that runs it (a real mom sends no `exec `) does
  // not, and ends of it: TORQUE shows 256+15. The script goes with the container.
  t.equal(job.exitStatus, 256 + 15, 'the job shell ended of the SIGTERM')
  t.ok(Date.now() - started < 10_000)
  t.match(job.stdout, 'before\n', 'output written before the kill is kept')
  t.notMatch(job.stdout, 'not-reached')
  t.same(await containersLeft(job.jobId), [])
})

t.test('when the job starter itself is SIGKILLed, the epilogue still removes the container', async t => {
  const marker = join(shared.path, 'orphaned-exec')
  const run = runJob(`#!/bin/sh\ntouch ${marker}\nsleep 60\n`, { config })
  await waitFor(marker)
  execFileSync('pkill', ['-KILL', '-f', 'cbatch.d/load.cjs jobstarter'])
  const { job } = await run
  t.equal(job.exitStatus, 256 + 9)
  t.equal(job.epilogue?.status, 0)
  t.same(await containersLeft(job.jobId), [], 'the sleep inside went with its container')
})

t.test('cbatch gc removes orphans only: old, labelled, made by this mom, and unknown to it', async t => {
  const engine = testEngine({ pullTimeoutMs: 30_000 })
  // This test's own pbs_mom beside the emulator's, on the same engine (multi-mom, or `--pbs-home` of another).
  const pbsHome = `/var/spool/cbatch-gc-test-${process.pid}`
  const momPriv = join(pbsHome, 'mom_priv')
  mkdirSync(join(momPriv, 'jobs'), { recursive: true })
  t.teardown(() => rmSync(pbsHome, { recursive: true, force: true }))
  const queues = parseConfig(readFileSync(config, 'utf8'))
  const [known, orphan, elsewhere, legacy] = ['1.known', '2.orphan', '3.elsewhere', '4.legacy'].map(id => `${process.pid}${id}`)
  writeFileSync(join(momPriv, 'jobs', `${known}.JB`), 'job')
  await prepareJob(facts(known), queues, engine, { ...PROLOGUE, batch: pbsMom(momPriv) })
  await prepareJob(facts(orphan), queues, engine, { ...PROLOGUE, batch: pbsMom(momPriv) })
  // A job of the other mom: this one has no file of it, yet it is not this mom's to remove.
  await prepareJob(facts(elsewhere), queues, engine, PROLOGUE)
  // Rlimits of its own: rootful Podman's defaults exceed what its service may grant (docs/admin.md).
  const run = (...args: string[]) => engineCli(['run', '-d', '--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', ...args, TEST_IMAGE, 'sleep', '60']).trim()
  const unlabelled = run()
  // Made by a cbatch before the mom label: whose it is cannot be told.
  run('--label', `cbatch.job=${legacy}`)
  t.teardown(() => engineCli(['rm', '-f', unlabelled, ...[known, orphan, elsewhere, legacy].flatMap(containersOf)]))

  t.same(await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 3600 }), [], 'too young: its prologue may still run')
  const dry = await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 0, dryRun: true })
  t.same(dry.map(c => c.labels['cbatch.job']), [orphan])
  t.equal(containersOf(orphan).length, 1, 'a dry run removes nothing')

  const cli = execFileSync(join(import.meta.dirname, '../dist/cbatch'),
    ['gc', '--config', config, '--pbs-home', pbsHome, '--grace', '0'], { encoding: 'utf8' })
  t.match(cli, new RegExp(`^removed cbatch-${orphan.replace('.', '\\.')}-[\\w-]+ \\(job ${orphan.replace('.', '\\.')}, running\\)$`, 'm'))
  t.match(cli, new RegExp(`^left alone \\S+ \\(job ${legacy.replace('.', '\\.')}, running\\): no cbatch.mom label says which pbs_mom made it`, 'm'),
    'an unlabelled job container is reported')
  t.notMatch(cli, elsewhere, 'another mom\'s job is not even mentioned')
  t.same(containersOf(orphan), [])
  t.equal(containersOf(known).length, 1, 'a job pbs_mom knows keeps its container')
  t.equal(containersOf(elsewhere).length, 1, 'another mom\'s job keeps its container')
  t.equal(containersOf(legacy).length, 1, 'an unlabelled job container is left alone')
  t.match(engineCli(['inspect', '-f', '{{.State.Status}}', unlabelled]), 'running', 'never a container without the label')
  const ps = execFileSync(join(import.meta.dirname, '../dist/cbatch'), ['ps', '--json', '--config', config, '--pbs-home', pbsHome], { encoding: 'utf8' })
  const shown = (JSON.parse(ps) as { job: string; mom?: string; knownToMom: boolean }[]).filter(j => [known, elsewhere, legacy].includes(j.job))
  t.same(shown.sort((a, b) => a.job.localeCompare(b.job)).map(j => [j.job, j.mom, j.knownToMom]),
    [[known, momPriv, true], [elsewhere, PROLOGUE.batch.stateDir, false], [legacy, undefined, false]], 'cbatch ps shows each container\'s mom')
})

t.test('engine faults: restarted mid-job, down at the epilogue, cleaned later', async t => {
  const engine = privateEngine(TEST_ENGINE, { images: [TEST_IMAGE], from: ENGINE_SOCKET })
  t.teardown(() => engine.dispose())
  await engine.start()
  const privateConfig = writeConfig(shared.path, `engine: { kind: ${engine.kind}, socket: ${engine.socket}, timeout: 5 }
log: { file: ${shared.path}/cbatch.log }
queues:
  batch: { image: ${TEST_IMAGE}, pull: never, volumes: [{ source: ${shared.path} }] }
`)
  const marker = join(shared.path, 'engine-restart')
  const run = runJob(`#!/bin/sh\ntouch ${marker}\necho working\nsleep 60\n`, { config: privateConfig })
  await waitFor(marker)
  await engine.stop() // the engine goes away under a running job (a Podman service's containers go on)...
  const { job } = await run
  t.equal(job.exitStatus, 125, 'the starter fails the job as cbatch\'s own failure')
  t.match(job.stdout, 'working\n', 'what the job wrote before is kept')
  t.match(job.stderr, new RegExp(`^cbatch: ${TEST_ENGINE === 'podman' ? 'Podman' : 'Docker'} engine error`, 'm'), 'and says why, naming the engine')
  t.equal(job.epilogue?.status, 2, '...and is still down at the epilogue, which says so')
  await engine.start()
  const left = execFileSync('docker', ['-H', `unix://${engine.socket}`, 'ps', '-aq', '--filter', `label=cbatch.job=${job.jobId}`], { encoding: 'utf8' }).trim()
  t.ok(left, 'the container outlived the engine restart')
  // Later, cbatch gc (cron, or the next prologue) removes it: pbs_mom has forgotten the job.
  const gc = execFileSync(join(import.meta.dirname, '../dist/cbatch'),
    ['gc', '--config', privateConfig, '--pbs-home', job.pbsHome, '--grace', '0'], { encoding: 'utf8' })
  t.match(gc, `(job ${job.jobId}, `)
  t.equal(execFileSync('docker', ['-H', `unix://${engine.socket}`, 'ps', '-aq'], { encoding: 'utf8' }).trim(), '')
})

t.test('32 jobs starting and ending at once all succeed, with no clash and no leftover', async t => {
  const accounting = join(shared.path, 'accounting.jsonl')
  const before = existsSync(accounting) ? readFileSync(accounting, 'utf8').split('\n').filter(Boolean).length : 0
  const runs = await Promise.all(Array.from({ length: 32 }, (_, i) => runJob(`#!/bin/sh\necho "job ${i} $PBS_JOBID"\n`, { config })))
  t.same(runs.map(r => r.job.exitStatus), runs.map(() => 0))
  runs.forEach((r, i) => t.match(r.job.stdout, `job ${i} ${r.job.jobId}\n`))
  t.equal(new Set(runs.map(r => r.job.jobId)).size, 32)
  const lines = readFileSync(accounting, 'utf8').split('\n').filter(Boolean).slice(before).map(l => JSON.parse(l) as AccountingRecord)
  t.same(lines.map(l => l.jobId).sort(), runs.map(r => r.job.jobId).sort(), 'one accounting line each')
  t.same((await Promise.all(runs.map(r => containersLeft(r.job.jobId)))).flat(), [])
})

t.test('interactive jobs (qsub -I) get a terminal in their container, and qdel ends them too', async t => {
  const hooksDir = join(import.meta.dirname, '../dist')
  const base = { user: TEST_USER, queue: 'batch', resources: 'nodes=1:ppn=1', hooksDir, config, script: join(shared.path, 'none.sh') }
  writeFileSync(base.script, '#!/bin/sh\n')
  const job = await emulateJob({ ...base, interactive: { input: 'tty\necho "env=$PBS_ENVIRONMENT"\nexit 4\n' } })
  t.equal(job.exitStatus, 4)
  t.match(job.stdout, /\/dev\/pts\/\d+/, 'the job shell has a terminal')
  t.match(job.stdout, 'env=PBS_INTERACTIVE')
  t.same(await containersLeft(job.jobId), [])

  const cancel = new AbortController()
  setTimeout(() => cancel.abort(), 2000)
  const started = Date.now()
  const cancelled = await emulateJob({ ...base, cancel: cancel.signal, interactive: { input: 'sleep 60\n' } })
  t.ok(Date.now() - started < 8000, `ended ${Date.now() - started} ms after it started`)
  t.not(cancelled.exitStatus, 0)
  t.same(await containersLeft(cancelled.jobId), [])
})

t.test('a pbs_mom restart mid-job leaves the job running, and the epilogue still cleans up', async t => {
  const marker = join(shared.path, 'mom-restart')
  const done = join(shared.path, 'mom-restart-done')
  const script = join(shared.path, 'survivor.sh')
  writeFileSync(script, `#!/bin/sh\ntouch ${marker}\nsleep 2\ntouch ${done}\n`)
  // Not below a mounted volume: a PBS_HOME never reaches a job.
  const pbsHome = `/var/spool/cbatch-restart-test-${process.pid}`
  t.teardown(() => rmSync(pbsHome, { recursive: true, force: true }))
  // pbs_mom (here `cbatch run`) dies under a running job...
  const mom = spawn(join(import.meta.dirname, '../dist/cbatch'),
    ['run', script, '--user', TEST_USER, '--config', config, '--pbs-home', pbsHome, '--keep'], { stdio: 'ignore' })
  await waitFor(marker)
  mom.kill('SIGKILL')
  // ...the job goes on in its container, and ends by itself.
  await waitFor(done)
  const jobId = readdirSync(join(pbsHome, 'mom_priv/jobs')).find(f => f.endsWith('.JB'))!.replace(/\.JB$/, '')
  t.equal(containersOf(jobId).length, 1, 'the container is still there for the epilogue')
  // The restarted pbs_mom recovers the job from mom_priv/jobs and runs its epilogue.
  const epilogue = runHook('epilogue', [jobId, TEST_USER, TEST_USER, 'survivor', '0', '', '', 'batch', '', '0',
    join(pbsHome, 'mom_priv/jobs', `${jobId}.SC`)], { env: {}, config, pbsHome })
  t.equal(epilogue.status, 0, epilogue.stderr)
  t.match(epilogue.stdout, /^cbatch: cpu .*, exit 0\n$/)
  t.same(await containersLeft(jobId), [])
})
