import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { inContainer, parentOf, sessionOf, signalSession } from '../lib/exec.ts'

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
  t.equal(signalSession(stranger.pid!, 'SIGTERM', { container: id, proc }), 0, 'a reused pid outside the container is left alone')
  t.equal(stranger.exitCode, null)
  t.equal(stranger.signalCode, null)
  const exited = new Promise(r => stranger.on('exit', (_, s) => r(s)))
  writeFileSync(join(proc, String(stranger.pid), 'cgroup'), `12:memory:/docker/${id}\n`)
  t.equal(signalSession(stranger.pid!, 'SIGTERM', { container: id, proc }), 1, 'one in the container is')
  t.equal(await exited, 'SIGTERM')
})

t.test('a process is in a container by its cgroup path, under any driver or parent', async t => {
  const id = 'b'.repeat(64)
  t.ok(inContainer(`12:memory:/docker/${id}\n`, id), 'cgroupfs, v1')
  t.ok(inContainer(`0::/system.slice/docker-${id}.scope\n`, id), 'systemd, v2')
  t.ok(inContainer(`4:cpuset:/torque/12.srv/${id}\n`, id), 'under TORQUE\'s job cgroup')
  t.notOk(inContainer(`12:memory:/docker/${id}x\n`, id))
  t.notOk(inContainer('0::/user.slice/session-1.scope\n', id))
  t.notOk(inContainer(`12:memory:/docker/${id}\n`, 'short'), 'only a full container id counts')
})
