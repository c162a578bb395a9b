// The sister's guard (lib/torque/guard.ts): busybox sh, run here against a jobs directory and a
// stand-in epilogue.parallel that records how it was run.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { guardSister, sisterGuardScript } from '../lib/torque/guard.ts'

const ARGS = ['13.head', 'alice', 'staff', 'job', 'nodes=2', 'batch', 'acct', '/x/jobs/13.head.SC']
const CONTAINER = 'c'.repeat(64)
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

function setup(t: Test) {
  const dir = t.testdir({ mom_priv: { jobs: {} }, hooks: {} })
  const momPriv = join(dir, 'mom_priv')
  const hooksDir = join(dir, 'hooks')
  const ran = join(dir, 'ran')
  writeFileSync(join(hooksDir, 'epilogue.parallel'), `#!/bin/sh\necho "$CBATCH_SISTER_CONTAINER $*" >'${ran}'\n`, { mode: 0o755 })
  const jb = join(momPriv, 'jobs/13.head.JB')
  const jc = join(momPriv, 'jobs/13.head.JC')
  return { momPriv, hooksDir, ran, jb, jc }
}

/** Runs the guard as the child of a shell that lives `parentSeconds`, as prologue.parallel would. */
function startGuard(s: ReturnType<typeof setup>, parentSeconds: number) {
  const parent = spawn('/bin/busybox', ['sh', '-c', '/bin/busybox sh -c "$0" cbatch-guard "$@" $$ & sleep "$P"; exit 0',
    sisterGuardScript({ jobFileWait: 1, poll: 0.3 }), join(s.momPriv, 'jobs'), '13.head', s.hooksDir],
  { stdio: 'ignore', env: { PATH: '/bin:/usr/bin', CBATCH_SISTER_CONTAINER: CONTAINER, P: String(parentSeconds) } })
  return parent
}

t.test('the guard starts waiting for the job file only once its prologue.parallel ended', async t => {
  const s = setup(t)
  // The parent's pid goes after the three directories; pbs_mom's arguments after it.
  const parent = spawn('/bin/busybox', ['sh', '-c', '/bin/busybox sh -c "$0" cbatch-guard "$1" "$2" "$3" $$ "$4" "$5" "$6" "$7" "$8" "$9" "${10}" "${11}" & sleep 3; exit 0',
    sisterGuardScript({ jobFileWait: 1, poll: 0.3 }), join(s.momPriv, 'jobs'), '13.head', s.hooksDir, ...ARGS],
  { stdio: 'ignore', env: { PATH: '/bin:/usr/bin', CBATCH_SISTER_CONTAINER: CONTAINER } })
  const parentGone = new Promise(r => parent.on('exit', r))
  // pbs_mom writes the sister's job file late, while its prologue.parallel still runs.
  await sleep(2500)
  t.notOk(existsSync(s.ran), 'no job file yet, but the prologue has not ended: the guard waits')
  writeFileSync(s.jb, '')
  await parentGone
  await sleep(2000)
  t.notOk(existsSync(s.ran), 'the job is known: the guard keeps its container')
  rmSync(s.jb)
  for (let i = 0; i < 50 && !existsSync(s.ran); i++) await sleep(100)
  t.equal(readFileSync(s.ran, 'utf8'), `${CONTAINER} 13.head alice staff job 0 nodes=2  batch acct 0 /x/jobs/13.head.SC\n`,
    'once the job is gone, epilogue.parallel runs for this container with pbs_mom\'s epilogue arguments')
})

t.test('pbs_mom\'s job_save, over and over, never sets the guard off; the job gone, it runs epilogue.parallel', async t => {
  const s = setup(t)
  writeFileSync(s.jb, '')
  startGuard(s, 0)
  // job_save rounds for 5 s, the .JB missing for 150 ms of every 200 ms.
  const end = performance.now() + 5000
  while (performance.now() < end) {
    writeFileSync(s.jc, '')
    rmSync(s.jb)
    await sleep(150)
    linkSync(s.jc, s.jb)
    rmSync(s.jc)
    await sleep(50)
  }
  t.notOk(existsSync(s.ran), 'the job kept its container through every job_save')
  // Gone for less than the second look: still not gone.
  rmSync(s.jb)
  await sleep(500)
  writeFileSync(s.jb, '')
  await sleep(1500)
  t.notOk(existsSync(s.ran), 'missing on one look only')
  rmSync(s.jb)
  for (let i = 0; i < 50 && !existsSync(s.ran); i++) await sleep(100)
  t.match(readFileSync(s.ran, 'utf8'), new RegExp(`^${CONTAINER} `))
})

t.test('a job file that never comes: the guard runs epilogue.parallel after its wait', async t => {
  const s = setup(t)
  const began = performance.now()
  startGuard(s, 0)
  for (let i = 0; i < 100 && !existsSync(s.ran); i++) await sleep(100)
  t.ok(existsSync(s.ran))
  t.ok(performance.now() - began >= 2000, 'the wait for the file, then two looks a second apart')
})

t.test('a guard that cannot be started is reported, not thrown', async t => {
  const s = setup(t)
  const errors: Error[] = []
  await guardSister({ momPriv: s.momPriv, hooksDir: s.hooksDir, containerId: CONTAINER, args: ARGS, busybox: '/nonexistent/busybox', onError: e => errors.push(e) })
  t.match(errors.map(e => e.message), [/ENOENT/])
})
