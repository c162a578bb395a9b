import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { linkSync, lstatSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { jobLines, MAX_LOG_LINE, nodeLogger } from '../lib/log.ts'
import { CBATCH } from './helpers/jobs.ts'
import { syslogDaemon } from './helpers/syslog.ts'

/** What a terminal would act on: C0 (but the line's own newline), DEL, C1, bidi controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/
/** Escapes a job can put in what it asks for: a clipboard write (OSC 52), a title, CSI as C1, a bidi override. */
const HOSTILE = '\u001b]52;c;ZWNobyBwd25lZA==\u0007\u001b]0;root@node\u0007\u009b2J\u202eevil\u007f'

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


t.test('a node log root may not use (a second hard link) loses no line: they go to syslog, after one saying why', async t => {
  const dir = t.testdir({ 'cbatch.log': '' })
  const file = join(dir, 'cbatch.log')
  linkSync(file, join(dir, 'elsewhere'))
  const daemon = await syslogDaemon(t)
  // No log.syslog in the config: the node's syslog (here the test's socket) all the same.
  const log = nodeLogger('prologue', '8.srv', file, undefined, daemon.socket)
  log.info('first')
  log.error('second')
  const lines = await daemon.received(3)
  t.equal(lines.length, 3, lines.join('\n'))
  // Each line is its own logger process: they may arrive in any order.
  const note = new RegExp(`^<27>.*cbatch.*"job":"8\\.srv","level":"error","message":"node log ${file} cannot be used, so this hook's lines go to syslog: node log ${file} is not safe: it has 2 names`)
  t.ok(lines.some(l => note.test(l)), 'why, once')
  t.ok(lines.some(l => /^<30>.*"level":"info","message":"first"/.test(l)))
  t.ok(lines.some(l => /^<27>.*"level":"error","message":"second"/.test(l)))
  t.equal(readFileSync(file, 'utf8'), '', 'nothing written to a file others may read or empty through another name')
})

t.test('a job\'s terminal escapes never reach the node log, syslog or `cbatch logs` as they are', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'cbatch.log')
  const daemon = await syslogDaemon(t)
  nodeLogger('prologue', '9.srv', file, daemon.socket).error(`image ${HOSTILE} is not allowed`, { image: HOSTILE })
  const text = readFileSync(file, 'utf8')
  t.notMatch(text, RAW_CONTROL, 'the file holds none')
  t.equal(jobLines(text, '9.srv')[0].message, `image ${HOSTILE} is not allowed`, 'and is still JSON of exactly what was said')
  t.notMatch((await daemon.received(1)).join('\n'), RAW_CONTROL, 'nor does syslog')
  // A line written raw, as an older cbatch did: `cbatch logs` shows it escaped, in either form.
  writeFileSync(file, `${JSON.stringify({ time: 't', hook: 'prologue', pid: 1, job: '9.srv', level: 'error', message: `image ${HOSTILE}` })}\n`)
  const config = join(dir, 'cbatch.yaml')
  writeFileSync(config, `log: { file: ${file} }\nqueues: {}\n`)
  const shown = spawnSync(CBATCH, ['logs', '9.srv', '--config', config], { encoding: 'utf8' })
  t.equal(shown.status, 0, shown.stderr)
  t.notMatch(shown.stdout.replace(/\n$/, ''), RAW_CONTROL)
  t.equal(shown.stdout, 't prologue[1] error image \\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b]0;root@node\\x07\\x9b2J\\u202eevil\\x7f\n')
  const json = spawnSync(CBATCH, ['logs', '9.srv', '--json', '--config', config], { encoding: 'utf8' }).stdout
  t.notMatch(json.replace(/\n$/, ''), RAW_CONTROL)
  t.equal(JSON.parse(json).message, `image ${HOSTILE}`, '--json is still JSON of exactly what was logged')
})
