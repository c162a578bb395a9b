// What the job owner and pbs_mom see when cbatch cannot run a job.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_PBS_HOME, hooksFor } from '../emulator/emulator.ts'
import { cookieOf, recordJob, refused, runHook, runJob, sharedDir, testConfig, writeConfig, NSS_USER, TEST_IMAGE, TEST_USER } from './helpers/jobs.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
// Where an engine socket could be: a directory only root may write to.
const noEngine = join(shared.path, 'run')
mkdirSync(noEngine, { mode: 0o755 })

t.test('an unreachable engine requeues the job (prologue exit 2) with a clear line, after a pause', async t => {
  const config = writeConfig(shared.path, `engine: { socket: ${noEngine}/docker.sock, requeuePause: 1 }
log: { file: ${shared.path}/cbatch.log }
queues:
  batch: { image: ${TEST_IMAGE} }
`)
  const { job, status, stderr } = await runJob('#!/bin/sh\necho must-not-run\n', { config, attempts: 3 })
  t.equal(job.prologue.status, 2)
  t.equal(job.attempts, 3, 'pbs_sched sends the job straight back, again and again')
  t.ok(job.prologue.ms >= 1000, 'each round takes a while: no flood while the node check takes the node out')
  t.equal(job.outcome, 'requeued')
  t.equal(job.exitStatus, undefined, 'the job never ran')
  t.notMatch(job.stdout, 'must-not-run')
  t.match(job.stderr, /^cbatch: Docker engine error \(.*\)\n$/, 'one line for the owner in .ER')
  t.match(stderr, 'prologue exited 2: job requeued')
  t.equal(status, 125)
  t.match(readFileSync(`${shared.path}/cbatch.log`, 'utf8'), /"hook":"prologue".*EngineError.*not reachable at .*run\/docker\.sock \(ENOENT\)/,
    'the node log has the detail')
})

t.test('a bad config refuses the job with path and line, in its .ER', async t => {
  const config = writeConfig(shared.path, `queues:\n  batch:\n    image: ${TEST_IMAGE}\n    network: bridge\n`)
  const { job } = await runJob('#!/bin/sh\necho must-not-run\n', { config })
  t.ok(refused(job))
  t.match(job.stderr, new RegExp(`^cbatch: invalid cbatch config ${config}:4:14: queues\\.batch\\.network: "bridge" is not one of none, host`))
  t.notMatch(job.stdout, 'must-not-run')
})

t.test('a bad config stops a job that reaches the starter anyway: never run unconfined', async t => {
  const config = writeConfig(shared.path, 'queues: [not, a, map]\n')
  const starter = runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_JOBID: `${process.pid}.unconfined`, USER: TEST_USER, PBS_QUEUE: 'batch', HOME: '/tmp' }, config, input: 'echo must-not-run\n' })
  t.equal(starter.status, 125)
  t.equal(starter.stdout, '')
  // At the first item, wherever the tests' engine section left it on the line.
  const column = readFileSync(config, 'utf8').split('\n').find(l => l.startsWith('queues:'))!.indexOf('not') + 1
  t.match(starter.stderr, new RegExp(`^cbatch: invalid cbatch config .*:\\d+:${column}: queues\\.0: `))
})

t.test('the starter refuses a job whose container is missing', async t => {
  recordJob('999.nowhere')
  const starter = runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_JOBID: '999.nowhere', PBS_JOBCOOKIE: cookieOf('999.nowhere'), USER: TEST_USER, PBS_QUEUE: 'batch', HOME: '/tmp' }, config: testConfig(shared.path), input: 'echo must-not-run\n' })
  t.equal(starter.status, 125)
  t.equal(starter.stdout, '')
  t.match(starter.stderr, /^cbatch: no container for job 999\.nowhere/)
})

t.test('the epilogue exits 0 when there is nothing to clean', async t => {
  const epilogue = runHook('epilogue', ['77.nowhere', TEST_USER, TEST_USER, 'j', '0', '', '', 'batch', '', '0', '/x/jobs/77.nowhere.SC'],
    { env: {}, config: testConfig(shared.path) })
  t.equal(epilogue.status, 0)
  t.equal(epilogue.stdout, '')
  t.equal(epilogue.stderr, '')
})

t.test('hooks called with the wrong arguments say so', async t => {
  const jobId = `${process.pid}.wrong-arguments`
  const prologue = runHook('prologue', [jobId], { env: {}, config: testConfig(shared.path) })
  t.equal(prologue.status, 0, 'refused: the starter will not run it')
  t.ok(existsSync(join(DEFAULT_PBS_HOME, 'mom_priv/cbatch-refused', jobId)), 'the refusal is recorded for the starter')
  const epilogue = runHook('epilogue', [jobId, TEST_USER, TEST_USER, 'j', '0', '', '', 'batch', '', '0'], { env: {}, config: testConfig(shared.path) })
  t.same([epilogue.status, epilogue.stdout, epilogue.stderr], [0, '', ''], 'the epilogue has nothing to say of a refused job')
  t.notOk(existsSync(join(DEFAULT_PBS_HOME, 'mom_priv/cbatch-refused', jobId)), 'and clears the record')
  t.equal(prologue.stderr, 'cbatch: prologue expects the 7 or 8 arguments pbs_mom passes, got 1\n')
})

/** The mother superior's streak of requeues the prologues above left in the emulator's mom_priv. */
const streak = join(DEFAULT_PBS_HOME, 'mom_priv', 'cbatch-requeues.json')

t.test('the node check marks a node that cannot run container jobs down, and is silent otherwise', async t => {
  rmSync(streak, { force: true }) // the tests above requeued jobs: that is another check
  const check = (config: string) => {
    const r = spawnSync(join(hooksFor(join(import.meta.dirname, '../dist'), config), 'nodecheck'), [], { encoding: 'utf8', env: {} })
    return { status: r.status, stdout: r.stdout }
  }
  const healthy = check(testConfig(shared.path))
  t.same(healthy, { status: 0, stdout: '' })
  const down = check(writeConfig(shared.path, `engine: { socket: ${noEngine}/docker.sock }\nqueues:\n  batch: { image: ${TEST_IMAGE} }\n`))
  t.equal(down.status, 1)
  t.match(down.stdout, /^ERROR cbatch: Docker engine error \(ping the engine\)\n$/, 'pbs_mom reads ERROR lines: pbs_server marks the node down')
  const broken = check(writeConfig(shared.path, 'queues: [\n'))
  t.match(broken.stdout, /^ERROR cbatch: invalid cbatch config /)
  // A malformed image is the config's fault, said with its line, not a job requeued every 10 s.
  const malformed = check(writeConfig(shared.path, 'queues:\n  batch:\n    image: "Not A Valid Image!!"\n'))
  t.match(malformed.stdout, /^ERROR cbatch: invalid cbatch config .*:3:12: queues\.batch\.image: "Not A Valid Image!!" is not an image reference/)
  const missing = check(writeConfig(shared.path, `queues:\n  batch: { image: cbatch-test/none:1, pull: never }\n`))
  t.equal(missing.stdout, 'ERROR cbatch: queue batch: image cbatch-test/none:1 is not on this node (pull: never)\n')
})

t.test('a mother superior whose prologue keeps requeueing is taken out of scheduling by the node check', async t => {
  rmSync(streak, { force: true })
  t.teardown(() => rmSync(streak, { force: true }))
  // The engine answers the node check, but the job's image cannot be pulled: each prologue requeues.
  const config = writeConfig(shared.path, `engine: { requeuePause: 0 }\nimages: { pullAttempts: 1 }\nqueues:\n  batch: { image: 127.0.0.1:5999/cbatch-test/unreachable:1, pull: always }\n`)
  const nodeCheck = () => spawnSync(join(hooksFor(join(import.meta.dirname, '../dist'), config), 'nodecheck'), [], { encoding: 'utf8', env: {} })
  // One job that keeps coming back is one job, and one owner's jobs are not enough.
  for (const [i, [job, user]] of ([[1, TEST_USER], [1, TEST_USER], [1, TEST_USER], [2, TEST_USER], [3, NSS_USER]] as const).entries()) {
    const prologue = runHook('prologue', [`${process.pid}${job}.requeued`, user, user, 'j', 'nodes=1', 'batch', ''], { env: {}, config })
    t.equal(prologue.status, 2, `try ${i + 1} requeued: ${prologue.stderr}`)
    if (i < 4) t.equal(nodeCheck().stdout, '', `after ${i + 1}: not yet a streak`)
  }
  const down = nodeCheck()
  t.equal(down.status, 1)
  t.equal(down.stdout, 'ERROR cbatch: the prologue requeued 3 jobs of 2 owners within 5 min for a fault of this node; see this node\'s cbatch log\n',
    'a line every user may read: no job, owner or failure in it')
  // Jobs that chose an image their registry cannot give are requeued, but say nothing of the
  // node, whoever their owners: job owners cannot take a node out of scheduling that way.
  rmSync(streak, { force: true })
  const chooser = writeConfig(shared.path, `engine: { requeuePause: 0 }\nimages: { pullAttempts: 1 }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: missing, allowedImages: ['127.0.0.1:5999/**'] }\n`)
  for (let i = 1; i <= 4; i++) {
    const jobId = `${process.pid}${i}.chooser`
    const script = join(DEFAULT_PBS_HOME, 'mom_priv/jobs', `${jobId}.SC`)
    writeFileSync(script, '#!/bin/sh\n#CBATCH image=127.0.0.1:5999/cbatch-test/unreachable:2\necho ran\n', { mode: 0o700 })
    t.teardown(() => rmSync(script, { force: true }))
    const user = i % 2 ? TEST_USER : NSS_USER
    const prologue = runHook('prologue', [jobId, user, user, 'j', 'nodes=1', 'batch', '', script], { env: {}, config: chooser })
    t.equal(prologue.status, 2, `job ${i} requeued: ${prologue.stderr}`)
  }
  t.same([nodeCheck().status, nodeCheck().stdout], [0, ''], 'the node still takes jobs')
  // A job that gets its container ends the streak.
  const good = testConfig(shared.path)
  const jobId = `${process.pid}4.requeued`
  t.teardown(() => { runHook('epilogue', [jobId, TEST_USER, TEST_USER, 'j', '0', '', '', 'batch', '', '0'], { env: {}, config: good }) })
  t.equal(runHook('prologue', [jobId, TEST_USER, TEST_USER, 'j', 'nodes=1', 'batch', ''], { env: {}, config: good }).status, 0)
  t.same([nodeCheck().status, nodeCheck().stdout], [0, ''])
})
