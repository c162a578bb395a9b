import t from 'tap'
import { spawn } from 'node:child_process'
import { lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { jobLines, MAX_LOG_LINE, nodeLogger } from '../lib/log.ts'

t.test('lines are single, capped, and appended only to root\'s own file', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'logs/cbatch.log')
  const log = nodeLogger('prologue', '12.srv', file)
  log.info(`two\nlines ${'x'.repeat(10_000)}`)
  log.error('second')
  log.info('done', { calls: [{ call: 'inspect', ms: 3 }] })
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean)
  t.equal(lines.length, 3, 'one line each, whatever the message holds')
  t.ok(lines[0].length <= MAX_LOG_LINE, 'capped')
  const first = JSON.parse(lines[0])
  t.match(first, { hook: 'prologue', pid: process.pid, job: '12.srv', level: 'info', message: /^two\nlines x+$/, truncated: true })
  t.match(JSON.parse(lines[2]), { message: 'done', calls: [{ call: 'inspect', ms: 3 }] })
  t.equal(lstatSync(file).mode & 0o777, 0o640)
  t.same(jobLines(readFileSync(file, 'utf8') + 'not json 12.srv\n', '12.srv').map(l => l.message.slice(0, 4)), ['two\n', 'seco', 'done'])
  t.same(jobLines(readFileSync(file, 'utf8'), '12.sr'), [], 'the job exactly')
})

t.test('a link planted at the log\'s path is never written through', async t => {
  const dir = t.testdir({ target: 'untouched\n' })
  symlinkSync(join(dir, 'target'), join(dir, 'cbatch.log'))
  nodeLogger('epilogue', '1.x', join(dir, 'cbatch.log')).info('hello')
  t.equal(readFileSync(join(dir, 'target'), 'utf8'), 'untouched\n')
})

t.test('each line goes to syslog too, through the socket the config names', async t => {
  // Short: a unix socket's path has at most 107 bytes.
  const dir = mkdtempSync('/tmp/cbatch-syslog-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'log.sock')
  // A syslog daemon's socket: a unix datagram socket, which Node itself cannot open.
  const daemon = spawn('/usr/bin/python3', ['-c', 'import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("ready", flush=True)\nprint(s.recv(65536).decode(), flush=True)', socket])
  let out = ''
  daemon.stdout.on('data', d => (out += d))
  while (!out.includes('ready')) await new Promise(r => setTimeout(r, 20))
  nodeLogger('prologue', '7.srv', undefined, socket).error('engine down', { calls: [] })
  await new Promise(r => daemon.on('close', r))
  t.match(out, /<27>.*cbatch(\[\d+\])?: \{"time":"[^"]+","hook":"prologue","pid":\d+,"job":"7\.srv","level":"error","message":"engine down","calls":\[\]\}/)
})
