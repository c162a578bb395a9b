// A syslog daemon's socket for tests (unix datagram, which Node cannot open): what it receives.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Test } from 'tap'

export async function syslogDaemon(t: Test) {
  const dir = mkdtempSync('/tmp/cbatch-syslog-') // a socket's path: at most 107 bytes
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'log.sock')
  const daemon = spawn('/usr/bin/python3', ['-u', '-c', 'import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("ready")\nwhile True: print(s.recv(65536).decode().replace("\\n", " "))', socket])
  t.teardown(() => { daemon.kill() })
  let out = ''
  daemon.stdout.on('data', d => (out += d))
  while (!out.includes('ready')) await new Promise(r => setTimeout(r, 20))
  return {
    socket,
    /** All it received so far, a datagram a line. */
    text: () => out,
    /** Its datagrams, once at least `lines` came (or 5 s passed). */
    received: async (lines: number) => {
      for (let i = 0; i < 200 && out.split('\n').length < lines + 2; i++) await new Promise(r => setTimeout(r, 25))
      return out.split('\n').slice(1).filter(Boolean)
    },
  }
}
