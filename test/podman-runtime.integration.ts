// A queue's runtime under Podman, whatever engine the rest of the suite runs against. Podman
// 4.3's API makes every container under the service's default runtime, whatever the create
// asks (its issue 28429): cbatch never runs a job under a runtime other than its queue's, so
// the job is refused with the reason, and config check, doctor and the node check say so at
// the queue's line before any job meets it (a Podman that gives the runtime runs the job
// under it). A node whose Podman has runsc as its default runtime runs such a queue under gVisor.
import t from 'tap'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { execFileSync, spawnSync } from 'node:child_process'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { hooksFor } from '../emulator/emulator.ts'
import { privateEngine } from '../emulator/engines.ts'
import { openEngine } from '../lib/engine/open.ts'
import { PODMAN_SOCKET } from './helpers/engine.ts'
import { CBATCH, hostId, refused, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const podman = (args: string[]) => execFileSync('docker', ['-H', `unix://${PODMAN_SOCKET}`, ...args], { encoding: 'utf8' })
/** Whether Podman ignores the runtime a container asks for (4.3 does), as cbatch finds out. */
const ignored = await openEngine({ kind: 'podman', socket: PODMAN_SOCKET, timeout: 30, pullTimeout: 60 }).runtimeUnusable('runsc')

const shared = sharedDir()
t.teardown(shared.dispose)
const ACCOUNTING = `${shared.path}/accounting.jsonl`
const configOn = (socket: string) => writeConfig(shared.path, `engine: { kind: podman, socket: ${socket} }
log: { file: ${shared.path}/cbatch.log }
accounting: { file: ${ACCOUNTING} }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
  gvisor:
    image: ${TEST_IMAGE}
    pull: never
    runtime: runsc
`)
const config = configOn(PODMAN_SOCKET)
if (!podman(['info', '--format', '{{json .Runtimes}}']).includes('"runsc"')) throw new Error('Podman has no runsc runtime: run scripts/provision.sh')
const gvisorLine = (file: string) => {
  const lines = readFileSync(file, 'utf8').split('\n')
  const at = lines.findIndex(l => l.includes('runtime: runsc'))
  return `${file}:${at + 1}:${lines[at].indexOf('runsc') + 1}: queues.gvisor.runtime: "runsc" is a runtime of the engine at `
}

t.test('a job of a runsc queue never runs under runc: refused with the reason where Podman ignores the ask, else in gVisor', async t => {
  const marker = `/home/${TEST_USER}/.cbatch-podman-runtime-${process.pid}`
  t.teardown(() => rmSync(marker, { force: true }))
  const { job } = await runJob(`#!/bin/sh\ntouch ${marker}\ncat /proc/version\n`, { config, queue: 'gvisor' })
  if (ignored) {
    t.ok(refused(job), job.stderr)
    t.match(job.stderr, 'cbatch: the Podman engine made the job\'s container under the runtime runc, not runsc, which its queue names; tell the node\'s admin')
    t.notOk(existsSync(marker), 'nothing of the job ran')
  } else {
    t.equal(job.exitStatus, 0, job.stderr)
    t.match(job.stdout, /^Linux version 4\.4\.0 /, 'gVisor\'s kernel')
  }
  for (let i = 0; i < 100 && podman(['ps', '-aq', '--filter', `label=cbatch.job=${job.jobId}`]).trim(); i++) await new Promise(r => setTimeout(r, 200))
  t.equal(podman(['ps', '-aq', '--filter', `label=cbatch.job=${job.jobId}`]).trim(), '', 'its container is gone')
})

t.test('config check, doctor and the node check name the queue\'s line with Podman\'s reason', { skip: !ignored && 'this Podman gives a container its runtime' }, async t => {
  const line = gvisorLine(config)
  const reason = /that no container gets: Podman 4\.\S+ makes every container under its default runtime runc, whatever the container asks/
  const check = spawnSync(CBATCH, ['config', 'check', config], { encoding: 'utf8' })
  t.equal(check.status, 1, check.stdout)
  t.match(check.stdout, line)
  t.match(check.stdout, reason)
  const doctor = spawnSync(CBATCH, ['doctor', '--config', config], { encoding: 'utf8' })
  t.match(doctor.stdout, `FAIL config: ${line}`)
  t.match(doctor.stdout, /^ok {3}runtime runsc: \/usr\/local\/libexec\/runsc-network-none: runsc version \S+/m, 'the runtime is listed, with its version')
  const node = spawnSync(join(hooksFor(join(import.meta.dirname, '../dist'), config), 'nodecheck'), [], { encoding: 'utf8', env: {} })
  t.equal(node.status, 1)
  t.match(node.stdout, `ERROR cbatch: ${line}`, 'pbs_server takes the node out before a job is refused')
  t.equal(podman(['ps', '-a', '--filter', 'name=cbatch-runtime-probe', '--format', '{{.Names}}']).trim(), '', 'no probe container left')
})

t.test('on a node whose Podman runs runsc by default, the queue\'s jobs run in gVisor\'s sandbox, and the record says so', async t => {
  const engine = privateEngine('podman', { images: [TEST_IMAGE], from: PODMAN_SOCKET, defaultRuntime: 'runsc' })
  t.teardown(() => engine.dispose())
  await engine.start()
  const sandboxed = configOn(engine.socket)
  const check = spawnSync(CBATCH, ['config', 'check', sandboxed], { encoding: 'utf8' })
  t.match(check.stdout, sandboxed, 'checked')
  t.notMatch(check.stdout, /were not checked/, 'against the engine')
  t.notMatch(check.stdout, /queues\.gvisor\.runtime/, 'its default is the queue\'s runtime: nothing to say of it')
  const { job } = await runJob('#!/bin/sh\nid -u\ncat /proc/version\nexit 3\n', { config: sandboxed, queue: 'gvisor', resources: 'nodes=1:ppn=1,mem=256mb' })
  t.equal(job.exitStatus, 3, job.stderr)
  const [uid, version] = job.stdout.split('\n')
  t.equal(uid, hostId('-u'), 'as its owner')
  t.match(version, /^Linux version 4\.4\.0 /, 'gVisor\'s kernel, not the node\'s')
  const record = readFileSync(ACCOUNTING, 'utf8').trim().split('\n').map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === job.jobId)!
  t.equal(record.runtime, 'runsc')
  t.equal(record.usage!.memory.limitBytes, 256 * 1024 ** 2, 'its memory limit holds on the sandbox\'s cgroup')
})
