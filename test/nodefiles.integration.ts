// Files root relies on, makes or prints, against a hostile user of the node (the non-root
// TEST_USER) through real jobs (`cbatch run`) and the operator's commands: a config others
// may write is not obeyed; a job's terminal escapes never reach root's terminal; who ran
// what is root's alone to read; a scratch base others could make first is refused the same
// way whatever they do; a node log root may not use loses no line. docs/security.md maps
// each threat to these tests.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { IMAGE_USE_DIR } from '../lib/node/imagecache.ts'
import { CBATCH, hostId, refused, runJob, sharedDir, TEST_IMAGE, writeConfig } from './helpers/jobs.ts'
import { syslogDaemon } from './helpers/syslog.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
/** Root's own, where only root may make names. */
const rootOnly = `/var/lib/cbatch-test/nodefiles-${process.pid}`
mkdirSync(rootOnly, { recursive: true, mode: 0o755 })
t.teardown(() => rmSync(rootOnly, { recursive: true, force: true }))
const user = { uid: hostId('-u'), gid: hostId('-g') }
const asUser = (command: string) => spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--', '/bin/sh', '-c', command], { encoding: 'utf8' })
const cbatch = (...args: string[]) => spawnSync(CBATCH, args, { encoding: 'utf8' })
/** What a terminal acts on: C0 (but newlines), DEL, C1, bidi controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/

t.test('a config others may write to is not obeyed: the hooks refuse, config check and doctor say why', async t => {
  const config = join(rootOnly, 'open.yaml')
  writeFileSync(config, `log: { file: ${rootOnly}/cbatch.log }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  chmodSync(config, 0o666)
  // The user takes the queue out of cbatch's hands: its jobs would run natively, unconfined.
  t.equal(asUser(`printf 'queues: {}\\n' > ${config}`).status, 0, 'they really can')
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config })
  t.ok(refused(job), job.stderr)
  t.match(job.stderr, `is not safe: others may write to ${config} (chmod go-w ${config})`)
  t.notMatch(job.stdout, 'ran')
  const check = cbatch('config', 'check', config)
  t.equal(check.status, 1)
  t.match(check.stdout, `others may write to ${config} (chmod go-w ${config})`)
})

t.test('a job\'s terminal escapes (qsub -v CBATCH_IMAGE) reach cbatch logs only made visible', async t => {
  const config = writeConfig(shared.path, `log: { file: ${rootOnly}/escapes.log }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  // A clipboard write (OSC 52), a window title, CSI as a C1 character, a bidi override.
  const hostile = 'x\u001b]52;c;cm0gLXJmIH4=\u0007\u001b]0;root@node\u0007\u009b2J\u202e'
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config, vars: { CBATCH_IMAGE: hostile } })
  t.ok(refused(job), job.stderr)
  t.notMatch(readFileSync(`${rootOnly}/escapes.log`, 'utf8').replace(/\n/g, ''), RAW_CONTROL, 'the node log holds none')
  for (const args of [[], ['--json']]) {
    const shown = cbatch('logs', job.jobId, '--config', config, ...args)
    t.equal(shown.status, 0, shown.stderr)
    t.notMatch(shown.stdout.replace(/\n/g, ''), RAW_CONTROL, `cbatch logs ${args.join(' ')}`)
    t.match(shown.stdout, /x\\(x1b|u001b)\]52;c;cm0gLXJmIH4=/, 'the escape is shown, not acted on')
  }
})

t.test('who ran which image, and when, is root\'s alone: an older world-readable record is closed by the next job', async t => {
  mkdirSync(IMAGE_USE_DIR, { recursive: true })
  chmodSync(IMAGE_USE_DIR, 0o755) // as an older cbatch left it
  const config = writeConfig(shared.path, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(statSync(IMAGE_USE_DIR).mode & 0o777, 0o700)
  t.equal(statSync(join(IMAGE_USE_DIR, '..')).mode & 0o777, 0o700, '/var/lib/cbatch too')
  const records = readdirSync(IMAGE_USE_DIR).filter(f => readFileSync(join(IMAGE_USE_DIR, f), 'utf8') === TEST_IMAGE)
  t.equal(records.length, 1)
  t.equal(statSync(join(IMAGE_USE_DIR, records[0])).mode & 0o777, 0o600)
  const look = asUser(`ls ${IMAGE_USE_DIR}; cat ${IMAGE_USE_DIR}/${records[0]}`)
  t.not(look.status, 0)
  t.notMatch(look.stdout, TEST_IMAGE, 'another user learns nothing')
})

t.test('a scratch base others could make first is refused the same way whether they did or not; config check says so first', async t => {
  // In the shared directory below /tmp: sticky and world-writable, both.
  const base = join(shared.path, `cbatch-scratch-${process.pid}`)
  const config = writeConfig(shared.path, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: ${base}, target: /scratch } }\n`)
  const check = cbatch('config', 'check', config)
  t.equal(check.status, 1)
  t.match(check.stdout, `queues.batch.scratch.base: scratch base ${base} is not safe: others may write to /tmp (sticky, but anyone may make a name in it first): keep it in a directory only root may write to`)
  const before = await runJob('#!/bin/sh\necho ran\n', { config })
  t.equal(asUser(`mkdir ${base}`).status, 0, 'the user makes it first')
  const after = await runJob('#!/bin/sh\necho ran\n', { config })
  for (const { job } of [before, after]) {
    t.ok(refused(job), job.stderr)
    t.match(job.stderr, `scratch base ${base} is not safe: others may write to /tmp (sticky`)
  }
  t.equal(before.job.stderr.replace(/\d+\.\S+/g, ''), after.job.stderr.replace(/\d+\.\S+/g, ''), 'the squat changed nothing')
  const nodeCheck = cbatch('doctor', '--config', config)
  t.match(nodeCheck.stdout, /^FAIL queues\.batch\.scratch\.base: .*sticky/m)

  // Where only root may make names, the user cannot make it first, and jobs run.
  const safe = join(rootOnly, 'scratch')
  t.not(asUser(`mkdir ${safe}`).status, 0)
  const good = writeConfig(shared.path, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: ${safe}, target: /scratch } }\n`)
  t.equal(cbatch('config', 'check', good).status, 0)
  const { job } = await runJob('#!/bin/sh\ntouch /scratch/f && echo scratch-ok\n', { config: good })
  t.match(job.stdout, 'scratch-ok')
  t.equal(statSync(safe).mode & 0o777, 0o711, 'owners reach their own directory, and list no one else\'s')
})


t.test('a node log with a second hard link: the job runs, its lines go to syslog with why, doctor fails', async t => {
  const log = join(rootOnly, 'linked.log')
  writeFileSync(log, '')
  linkSync(log, join(rootOnly, 'second-name'))
  const daemon = await syslogDaemon(t)
  const config = writeConfig(shared.path, `log: { file: ${log}, syslog: ${daemon.socket} }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config })
  t.equal(job.exitStatus, 0, job.stderr)
  for (let i = 0; i < 100 && !/"hook":"epilogue".*"level":"info"/.test(daemon.text()); i++) await new Promise(r => setTimeout(r, 50))
  t.match(daemon.text(), `node log ${log} cannot be used, so this hook's lines go to syslog: node log ${log} is not safe: it has 2 names`)
  t.match(daemon.text(), new RegExp(`"hook":"prologue","pid":\\d+,"job":"${job.jobId.replace(/\./g, '\\.')}"`), 'the prologue\'s lines are there')
  t.equal(readFileSync(log, 'utf8'), '', 'nothing written where another name could read or empty it')
  const doctor = cbatch('doctor', '--config', config)
  t.equal(doctor.status, 1)
  t.match(doctor.stdout, /^FAIL log\.file: node log .* it has 2 names/m)
})
