import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { EventEmitter } from 'node:events'
import { PassThrough, Readable } from 'node:stream'
import { containerName } from '../lib/job/container.ts'
import { checkClaims, checkImage, runInContainer } from '../lib/job/starter.ts'
import { inContainer, parentOf, sessionOf, signalSession } from '../lib/host/proc.ts'
import { DockerEngine } from '../lib/engine/docker.ts'
import { FakeEngine, testSpec } from './helpers/fake-engine.ts'
import { runningJob } from '../lib/torque/job.ts'

/** Docker's names of a container's cgroup (no engine call is made). */
const docker = new DockerEngine({ socket: '/nonexistent/docker.sock', timeoutMs: 1000, pullTimeoutMs: 1000 })

t.test('session id is read past a command name with spaces and parens', async t => {
  t.equal(sessionOf('4242 (a) b) c) S 1 4242 4200 0 -1 4194560'), 4200)
  t.equal(parentOf('4242 (a) b) c) S 1 4242 4200 0 -1 4194560'), 1)
  t.equal(sessionOf(readFileSync('/proc/self/stat', 'utf8')), Number(readFileSync('/proc/self/stat', 'utf8').split(' ')[5]))
})

t.test('signalSession reaches every process of a session and nothing else', async t => {
  // A session of a shell and its child, like the job shell and its children in a container.
  const leader = spawn('sh', ['-c', 'sleep 30 & sleep 30; wait'], { detached: true, stdio: 'ignore' })
  t.teardown(() => { try { process.kill(-leader.pid!, 'SIGKILL') } catch { /* gone */ } })
  await new Promise(r => setTimeout(r, 200))
  const exited = new Promise<NodeJS.Signals | null>(r => leader.on('exit', (_, s) => r(s)))
  const sent = signalSession(leader.pid!, 'SIGTERM')
  t.equal(sent, 3, 'the shell and both sleeps')
  t.equal(await exited, 'SIGTERM')
  t.equal(signalSession(1, 'SIGTERM'), 0, 'never init')
  t.equal(signalSession(0, 'SIGTERM'), 0)
})

t.test('with a container, only processes in that container\'s cgroup are signalled', async t => {
  const id = 'a'.repeat(64)
  // A session whose processes the engine named, but whose pid now belongs to something else.
  const stranger = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' })
  t.teardown(() => { try { stranger.kill('SIGKILL') } catch { /* gone */ } })
  const proc = t.testdir({
    [String(stranger.pid)]: {
      stat: `${stranger.pid} (sleep) S 1 ${stranger.pid} ${stranger.pid} 0 -1 0`,
      cgroup: '12:memory:/system.slice/sshd.service\n0::/system.slice/sshd.service\n',
    },
  })
  t.equal(signalSession(stranger.pid!, 'SIGTERM', { container: docker.cgroupNames(id), proc }), 0, 'a reused pid outside the container is left alone')
  t.equal(stranger.exitCode, null)
  t.equal(stranger.signalCode, null)
  const exited = new Promise(r => stranger.on('exit', (_, s) => r(s)))
  writeFileSync(join(proc, String(stranger.pid), 'cgroup'), `12:memory:/docker/${id}\n`)
  t.equal(signalSession(stranger.pid!, 'SIGTERM', { container: docker.cgroupNames(id), proc }), 1, 'one in the container is')
  t.equal(await exited, 'SIGTERM')
})

t.test('a process is in a container by its cgroup path, under any driver or parent', async t => {
  const id = 'b'.repeat(64)
  const names = docker.cgroupNames(id)
  t.ok(inContainer(`12:memory:/docker/${id}\n`, names), 'cgroupfs, v1')
  t.ok(inContainer(`0::/system.slice/docker-${id}.scope\n`, names), 'systemd, v2')
  t.ok(inContainer(`4:cpuset:/torque/12.srv/${id}\n`, names), 'under TORQUE\'s job cgroup')
  t.notOk(inContainer(`12:memory:/docker/${id}x\n`, names))
  t.notOk(inContainer('0::/user.slice/session-1.scope\n', names))
  t.same(docker.cgroupNames('short'), [], 'only a full container id names a cgroup')
  t.notOk(inContainer('12:memory:/docker/short\n', docker.cgroupNames('short')))
})

// The starter's orchestration, against the in-memory engine.
const job = runningJob({ jobId: '7.srv', queue: 'batch', user: 'alice', uid: 1001, group: 'alice', gid: 1002, cookie: 'C00K1E', resources: '' })
const facts = { jobId: '7.srv', task: 1, queue: 'batch', user: 'alice', home: '/home/alice', workDir: '/home/alice' }
const labels = { 'cbatch.job': '7.srv', 'cbatch.queue': 'batch', 'cbatch.user': 'alice', 'cbatch.uid': '1001', 'cbatch.gid': '1002', 'cbatch.shell-fallback': '/bin/sh' }

async function started(engine: FakeEngine, over: Record<string, string | undefined> = {}) {
  const id = await engine.run(testSpec({ name: containerName('7.srv', '/var/spool/torque/mom_priv'), image: 'img:1', user: '65534:65534', labels: JSON.parse(JSON.stringify({ ...labels, ...over })) }))
  return (await engine.inspect(id))!
}

function stdio(input = '/var/spool/torque/mom_priv/jobs/7.srv.SC\n') {
  const out = new PassThrough()
  const err = new PassThrough()
  let stdout = ''
  let stderr = ''
  out.on('data', d => (stdout += d))
  err.on('data', d => (stderr += d))
  return { io: { stdin: Readable.from([input]), stdout: out, stderr: err }, output: () => ({ stdout, stderr }) }
}

t.test('the starter runs the job shell as the owner its labels and job file agree on', async t => {
  const engine = new FakeEngine()
  engine.execStatus = 3
  const container = await started(engine)
  const { io, output } = stdio()
  const status = await runInContainer(engine, container, { facts, job, argv: ['/bin/bash'], env: { A: '1' } }, io, new EventEmitter())
  t.equal(status, 3, 'the job shell\'s status')
  t.match(engine.execs[0], { user: '1001:1002', cmd: ['/bin/sh'], env: ['A=1'], workingDir: '/home/alice', tty: false },
    'as the labels\' uid:gid, never the holder\'s; bash missing from the image: the fallback shell')
  t.match(output().stderr, /^umask 0\d{3}\n\/var\/spool\/torque\/mom_priv\/jobs\/7\.srv\.SC\n$/, 'pbs_mom\'s umask, then its script line')
})

t.test('a job whose container\'s init died while the engine keeps its exec open (gVisor\'s sandbox, killed) ends, killed', async t => {
  const engine = new FakeEngine()
  const init = spawn('sleep', ['1'])
  engine.pid = init.pid!
  const container = await started(engine)
  // Its stdin never ends: the in-memory exec stays attached, as the engine's did under runsc.
  const { io, output } = stdio()
  const held = new PassThrough()
  held.write('/var/spool/torque/mom_priv/jobs/7.srv.SC\n')
  const startedAt = Date.now()
  const status = await runInContainer(engine, container, { facts, job, argv: ['/bin/bash'], env: {} }, { ...io, stdin: held }, new EventEmitter())
  t.equal(status, 137, 'as killed')
  t.match(output().stderr, /cbatch: job killed: its container ended\n$/)
  t.ok(Date.now() - startedAt < 6000, `ended ${Date.now() - startedAt} ms after it started, the init lived 1 s`)
})

t.test('a container whose labels do not agree with pbs_mom\'s job file is never entered', async t => {
  for (const over of [{ 'cbatch.uid': '0' }, { 'cbatch.uid': '1002' }, { 'cbatch.user': 'bob' }, { 'cbatch.queue': 'other' },
    { 'cbatch.job': '8.srv' }, { 'cbatch.gid': undefined }, { 'cbatch.gid': 'x' }]) {
    const engine = new FakeEngine()
    const container = await started(engine, over)
    await t.rejects(runInContainer(engine, container, { facts, job, argv: ['/bin/sh'], env: {} }, stdio().io, new EventEmitter()),
      { name: 'PolicyError', message: /does not belong to alice/ }, JSON.stringify(over))
    t.same(engine.execs, [], 'nothing ran')
  }
  const engine = new FakeEngine()
  const stopped = { ...await started(engine), running: false, state: 'exited' }
  await t.rejects(runInContainer(engine, stopped, { facts, job, argv: ['/bin/sh'], env: {} }, stdio().io, new EventEmitter()), { name: 'ContainerStoppedError' })
})

t.test('a TM task runs what it named, with no script line and no fallback shell', async t => {
  const engine = new FakeEngine()
  const container = await started(engine)
  const { io, output } = stdio('')
  await runInContainer(engine, container, { facts: { ...facts, task: 2, user: undefined }, job, argv: ['/bin/bash', '-c', 'hostname'], env: {} }, io, new EventEmitter())
  t.same(engine.execs[0].cmd, ['/bin/bash', '-c', 'hostname'])
  t.equal(output().stderr, '', 'nothing written to its stdin')
})

t.test('claims of the environment must match pbs_mom\'s job file; a requested image, the container', async t => {
  t.doesNotThrow(() => checkClaims(facts, job))
  t.doesNotThrow(() => checkClaims({ ...facts, user: undefined, task: 2 }, job), 'a task claims no user')
  t.throws(() => checkClaims({ ...facts, user: 'root' }, job), { name: 'PolicyError', message: 'job 7.srv belongs to alice, not root' })
  t.throws(() => checkClaims({ ...facts, queue: 'unmanaged' }, job), { message: 'job 7.srv is in queue batch, not unmanaged' })
  t.doesNotThrow(() => checkImage({ image: 'site/a:latest', labels: {} }, 'site/a'))
  t.doesNotThrow(() => checkImage({ image: 'site/a:1', labels: {} }, undefined))
  t.throws(() => checkImage({ image: 'site/a:1', labels: {} }, 'site/b:1'), { name: 'PolicyError', message: /asked for image site\/b:1/ })
  const signed = { image: `site/a@sha256:${'a'.repeat(64)}`, labels: { 'cbatch.image': 'site/a:1' } }
  t.doesNotThrow(() => checkImage(signed, 'site/a:1'), 'a signed image runs by digest; the job named it by its tag')
  t.throws(() => checkImage(signed, 'site/b:1'), { name: 'PolicyError' })
})
