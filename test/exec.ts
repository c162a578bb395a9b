import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { parentOf, sessionOf, signalSession } from '../lib/exec.ts'

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
