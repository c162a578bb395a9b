// What the engine can grant a container's rlimits, read from a /proc of the test's making
// and from this host's own.
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { grantableLimits, hardLimits, listenerOf } from '../lib/host/grantable.ts'

const LIMITS = (nofile: string, nproc: string) => `Limit                     Soft Limit           Hard Limit           Units
Max processes             ${nproc}                ${nproc}                processes
Max open files            1024                 ${nofile}                files
`
const CAP_ALL = '000001ffffffffff'
const CAP_NO_SYS_RESOURCE = '000001fffeffffff'

/** A /proc with this process (`self`), an engine daemon (pid 42) listening on `socket`, and another process (7). */
function fakeProc(t: Test, { self, daemon }: { self: string; daemon: string }, socket = '/run/engine.sock') {
  const proc = t.testdir()
  const process = (pid: string, caps: string, limits: string, fds: Record<string, string>) => {
    mkdirSync(join(proc, pid, 'fd'), { recursive: true })
    writeFileSync(join(proc, pid, 'status'), `Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t${caps}\n`)
    writeFileSync(join(proc, pid, 'limits'), limits)
    for (const [fd, target] of Object.entries(fds)) symlinkSync(target, join(proc, pid, 'fd', fd))
  }
  process('self', self, LIMITS('20000', '96367'), {})
  process('7', CAP_ALL, LIMITS('1048576', 'unlimited'), { 0: '/dev/null', 3: 'socket:[111]' })
  process('42', daemon, LIMITS('20000', '32768'), { 0: '/dev/null', 5: 'pipe:[9]', 6: 'socket:[4242]' })
  mkdirSync(join(proc, 'net'))
  mkdirSync(join(proc, 'sys/fs'), { recursive: true })
  writeFileSync(join(proc, 'sys/fs/nr_open'), '1048576\n')
  writeFileSync(join(proc, 'net/unix'), `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000003 00000000 00000000 0001 03 111 ${socket}
0000000000000000: 00000002 00000000 00010000 0001 01 4242 ${socket}
0000000000000000: 00000002 00000000 00010000 0001 01 5555 /run/other.sock
0000000000000000: 00000002 00000000 00000000 0002 01 6666
`)
  return proc
}

t.test('without CAP_SYS_RESOURCE: the hard limits of the daemon that listens on the socket', async t => {
  const proc = fakeProc(t, { self: CAP_NO_SYS_RESOURCE, daemon: CAP_NO_SYS_RESOURCE })
  t.equal(listenerOf('/run/engine.sock', proc), '42', 'the listener, not the client connected to it (7)')
  t.same(grantableLimits('/run/engine.sock', proc), { nofile: 20000, nproc: 32768 })
  t.equal(listenerOf('/run/none.sock', proc), undefined)
  t.same(grantableLimits('/run/none.sock', proc), { nofile: 20000, nproc: 96367 }, 'no daemon found: this process\'s own')
})

t.test('with CAP_SYS_RESOURCE: the kernel\'s bound of open files, none of processes', async t => {
  const proc = fakeProc(t, { self: CAP_ALL, daemon: CAP_NO_SYS_RESOURCE })
  t.same(grantableLimits('/run/engine.sock', proc), { nofile: 1048576 }, 'no scan: the daemon is root of a node too')
  const daemonMay = fakeProc(t, { self: CAP_NO_SYS_RESOURCE, daemon: CAP_ALL })
  t.same(grantableLimits('/run/engine.sock', daemonMay), { nofile: 1048576 })
})

t.test('hard limits of /proc/<pid>/limits; unlimited is no bound', async t => {
  t.same(hardLimits(LIMITS('4096', 'unlimited')), { nofile: 4096 })
  t.same(hardLimits(''), {})
})

t.test('this host: the process listening on a socket of ours is this one', async t => {
  // A short path: a unix socket's has at most 107 bytes.
  const dir = mkdtempSync('/tmp/cbatch-grantable-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'engine.sock')
  const server = createServer().listen(socket)
  t.teardown(() => { server.close() })
  await new Promise(r => server.on('listening', r))
  t.equal(listenerOf(socket), String(process.pid))
  const own = hardLimits(readFileSync('/proc/self/limits', 'utf8'))
  const mayRaise = (BigInt(`0x${/^CapEff:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n & 1n) === 1n
  t.same(grantableLimits(socket), mayRaise ? { nofile: Number(readFileSync('/proc/sys/fs/nr_open', 'utf8')) } : own)
})
