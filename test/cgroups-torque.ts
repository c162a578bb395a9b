import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DockerEngine } from '../lib/engine/docker.ts'
import { killContainerProcesses, leaveJobCgroups, rejoinJobMemoryCgroup, removeEngineLeftovers } from '../lib/torque/cgroups.ts'

/** Docker's names of a container's cgroup (no engine call is made). */
const docker = new DockerEngine({ socket: '/nonexistent/docker.sock', timeoutMs: 1000, pullTimeoutMs: 1000 })

t.test('a container that outlives its job is killed through its cgroup, the job\'s own processes are not', async t => {
  const inContainer = spawn('sleep', ['30'], { stdio: 'ignore' })
  const notInIt = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => { notInIt.kill('SIGKILL') })
  const sys = t.testdir({
    memory: { torque: { '12.srv': { 'cgroup.procs': `${notInIt.pid}\n`, ['c'.repeat(64)]: { 'cgroup.procs': `${inContainer.pid}\n` } } } },
  })
  const killed = new Promise(r => inContainer.on('exit', (_, s) => r(s)))
  t.equal(killContainerProcesses('12.srv', { proc: '/proc', sys }), 1)
  t.equal(await killed, 'SIGKILL')
  t.equal(notInIt.exitCode, null, 'what is in the job cgroup itself (the epilogue, pbs_mom\'s) is left alone')
  t.equal(killContainerProcesses('13.srv', { proc: '/proc', sys }), 0)
  t.equal(killContainerProcesses('../..', { proc: '/proc', sys }), 0, 'no path tricks')
})

t.test('the engine\'s leftovers go, pbs_mom\'s own controllers and busy ones stay', async t => {
  const sys = t.testdir({
    pids: { torque: { '12.srv': {} } },
    blkio: { torque: { '12.srv': { busy: {} } } },
    memory: { torque: { '12.srv': {} } },
    cpuset: { torque: { '12.srv': {} } },
  })
  t.same(removeEngineLeftovers('12.srv', { proc: '/proc', sys }), [join(sys, 'pids/torque/12.srv')])
  t.notOk(existsSync(join(sys, 'pids/torque/12.srv')))
  t.ok(existsSync(join(sys, 'blkio/torque/12.srv')), 'not empty: a live container\'s')
  t.ok(existsSync(join(sys, 'memory/torque/12.srv')), 'pbs_mom removes its own')
})

t.test('the starter rejoins only a job memory cgroup its wrapper named', async t => {
  const sys = t.testdir({ memory: { torque: { '12.srv': { 'cgroup.procs': '' } } } })
  rejoinJobMemoryCgroup('/torque/12.srv', { proc: '/proc', sys })
  t.equal(readFileSync(join(sys, 'memory/torque/12.srv/cgroup.procs'), 'utf8'), String(process.pid))
  for (const bad of ['', undefined, '/torque/..', '/etc', '/torque/a/b']) {
    mkdirSync(join(sys, 'memory/etc'), { recursive: true })
    rejoinJobMemoryCgroup(bad, { proc: '/proc', sys })
  }
  t.notOk(existsSync(join(sys, 'memory/etc/cgroup.procs')))
})

t.test('the detached pull leaves the job\'s cgroups for the root of each hierarchy, and only those', async t => {
  const base = t.testdir({
    proc: { self: { cgroup: '9:name=systemd:/system.slice/pbs_mom.service\n5:devices:/torque/12.srv\n4:memory:/torque/12.srv\n1:cpu,cpuacct:/torque/12.srv\n3:pids:/\n' } },
    sys: { systemd: {}, devices: {}, memory: {}, 'cpu,cpuacct': {}, pids: {} },
  })
  leaveJobCgroups({ proc: join(base, 'proc'), sys: join(base, 'sys') })
  for (const controller of ['devices', 'memory', 'cpu,cpuacct']) {
    t.equal(readFileSync(join(base, 'sys', controller, 'cgroup.procs'), 'utf8'), String(process.pid), controller)
  }
  t.notOk(existsSync(join(base, 'sys/systemd/cgroup.procs')), 'a cgroup of no job is left as it is')
  t.notOk(existsSync(join(base, 'sys/pids/cgroup.procs')))
})

t.test('a sister guard\'s epilogue kills only its own container\'s processes, never a later try\'s', async t => {
  const mine = spawn('sleep', ['30'], { stdio: 'ignore' })
  const later = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.teardown(() => { later.kill('SIGKILL') })
  const [own, other] = ['a'.repeat(64), 'b'.repeat(64)]
  const sys = t.testdir({
    memory: { torque: { '12.srv': { [own]: { 'cgroup.procs': `${mine.pid}\n` }, [other]: { 'cgroup.procs': `${later.pid}\n` } } } },
  })
  const killed = new Promise(r => mine.on('exit', (_, s) => r(s)))
  t.equal(killContainerProcesses('12.srv', { proc: '/proc', sys }, docker.cgroupNames(own)), 1)
  t.equal(await killed, 'SIGKILL')
  t.equal(later.exitCode, null)
  t.equal(killContainerProcesses('12.srv', { proc: '/proc', sys }, docker.cgroupNames('../x')), 0, 'no path tricks')
})
