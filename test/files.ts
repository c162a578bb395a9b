// lib/host/files.ts: which host process shows a container's files: its init under runc,
// gVisor's gofer (root's, in the sandbox's cgroup) under runsc, and nothing else.
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { containerFiles } from '../lib/host/files.ts'

/** A /proc and a cgroup v1 tree with these processes, all in one container's cgroup. */
function host(t: Test, processes: Record<number, { argv: string[]; uid: number }>) {
  const dir = mkdtempSync(join(tmpdir(), 'cbatch-files-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const roots = { proc: join(dir, 'proc'), sys: join(dir, 'sys') }
  mkdirSync(join(roots.sys, 'pids/docker/abc'), { recursive: true })
  writeFileSync(join(roots.sys, 'pids/docker/abc/cgroup.procs'), Object.keys(processes).map(p => `${p}\n`).join(''))
  for (const [pid, { argv, uid }] of Object.entries(processes)) {
    mkdirSync(join(roots.proc, pid), { recursive: true })
    writeFileSync(join(roots.proc, pid, 'cmdline'), `${argv.join('\0')}\0`)
    writeFileSync(join(roots.proc, pid, 'status'), `Name:\texe\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\n`)
    writeFileSync(join(roots.proc, pid, 'cgroup'), '9:name=systemd:/docker/abc\n8:pids:/docker/abc\n4:memory:/docker/abc\n')
  }
  return roots
}

t.test('runc: the container\'s init, whose table shows read-only binds', async t => {
  const roots = host(t, { 200: { argv: ['sleep', 'infinity'], uid: 65534 } })
  t.same(containerFiles(200, roots), { pid: 200, readOnlyShown: true })
})

t.test('gVisor: the sandbox\'s gofer, root\'s; never a process of the job that calls itself one', async t => {
  const sandbox = { argv: ['runsc-sandbox', '--root=/var/run/docker/runtime-runc/moby', 'boot'], uid: 65534 }
  const gofer = { argv: ['runsc-gofer', '--root=/var/run/docker/runtime-runc/moby', 'gofer'], uid: 0 }
  // The job's code runs in the sandbox's stubs: unprivileged, whatever argv it writes.
  const stub = { argv: ['runsc-gofer'], uid: 65534 }
  t.same(containerFiles(100, host(t, { 99: gofer, 100: sandbox, 101: stub })), { pid: 99, readOnlyShown: false })
  t.throws(() => containerFiles(100, host(t, { 100: sandbox, 101: stub })), { name: 'UnsafePathError', message: /cannot tell the gVisor gofer of the job's container \(0 found\)/ })
  t.throws(() => containerFiles(100, host(t, { 98: gofer, 99: gofer, 100: sandbox })), { message: /\(2 found\)/ })
})
