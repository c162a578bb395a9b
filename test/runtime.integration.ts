// A container runtime per queue, end to end on the real engine: a queue under gVisor (runsc,
// registered by scripts/provision.sh) runs its jobs in gVisor's sandbox as their owner, with
// their output, exit status, limits and accounting; a queue naming a runtime the engine lacks
// fails config check, doctor and the node check at its line, and its jobs are refused.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { hooksFor } from '../emulator/emulator.ts'
import { DOCKER_SOCKET } from './helpers/engine.ts'
import { CBATCH, hostId, refused, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const ACCOUNTING = `${shared.path}/accounting.jsonl`
const MISSING = 'cbatch-no-such-runtime'
// Docker's, whatever engine the suite runs against: runsc is registered with the main dockerd
// (provision.sh). Podman's API gives no container a runtime of its own: test/podman-runtime.integration.ts.
const config = writeConfig(shared.path, `engine: { socket: ${DOCKER_SOCKET} }
log: { file: ${shared.path}/cbatch.log }
accounting: { file: ${ACCOUNTING} }
queues:
  gvisor:
    image: ${TEST_IMAGE}
    pull: never
    runtime: runsc
    volumes: [{ source: ${shared.path}, target: /ro, readOnly: true }]
  batch:
    image: ${TEST_IMAGE}
    pull: never
  nowhere:
    image: ${TEST_IMAGE}
    pull: never
    runtime: ${MISSING}
`)
const MiB = 1024 ** 2
const docker = (args: string[]) => execFileSync('docker', args, { encoding: 'utf8' })

const recordOf = (jobId: string): AccountingRecord => readFileSync(ACCOUNTING, 'utf8').trim().split('\n')
  .map(l => JSON.parse(l) as AccountingRecord).find(r => r.jobId === jobId)!

/** Whether the job's container is gone (the epilogue may hand its removal to a detached remover). */
async function gone(jobId: string): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (!docker(['ps', '-aq', '--filter', `label=cbatch.job=${jobId}`]).trim()) return true
    await new Promise(r => setTimeout(r, 200))
  }
  return false
}

const engineRuntimes = () => Object.keys(JSON.parse(docker(['info', '--format', '{{json .Runtimes}}'])))
if (!engineRuntimes().includes('runsc')) throw new Error('the engine has no runsc runtime: run scripts/provision.sh')

t.test('a job of a runsc queue runs in gVisor\'s sandbox as its owner, with its output and exit status, and the record says runsc', async t => {
  const { job } = await runJob(`#!/bin/sh
id -u; id -G
cat /proc/version
dmesg | head -1
echo to-stderr >&2
(echo x > /ro/written) 2>/dev/null && echo ro-written || echo ro-refused
ifconfig -a | grep -c 'Link encap'
exit 7
`, { config, queue: 'gvisor', resources: 'nodes=1:ppn=1,mem=256mb' })
  t.equal(job.exitStatus, 7, job.stderr)
  const [uid, groups, version, dmesg, ro, interfaces] = job.stdout.split('\n')
  t.equal(uid, hostId('-u'), 'the owner\'s uid')
  t.same(groups.split(' ').sort(), hostId('-G').split(' ').sort(), 'and groups')
  t.match(version, /^Linux version 4\.4\.0 /, 'gVisor\'s kernel, not the node\'s')
  t.match(dmesg, /Starting gVisor/)
  t.equal(ro, 'ro-refused', 'a read-only bind of a directory the owner may write to is read-only in the sandbox (its gofer\'s table cannot show it)')
  t.equal(interfaces, '1', 'its own loopback only (runsc --network=none)')
  t.equal(job.stderr, 'to-stderr\n')
  t.match(job.stdout, /\ncbatch: cpu [\d.]+ s, .*exit 7\n$/)
  const record = recordOf(job.jobId)
  t.equal(record.runtime, 'runsc')
  t.equal(record.usage!.memory.limitBytes, 256 * MiB, 'the memory limit holds on the sandbox\'s cgroup')
  // The cgroup holds the sandbox (its kernel and gofer), not only the job: it counts them too.
  t.ok(record.usage!.memory.peakBytes > 5 * MiB, `peak ${record.usage!.memory.peakBytes / MiB} MiB, the sandbox included`)
  t.ok(await gone(job.jobId), 'its container is gone')
})

t.test('a queue without a runtime runs under the engine\'s default, and says so', async t => {
  const { job } = await runJob('#!/bin/sh\ncat /proc/version\n', { config, queue: 'batch' })
  t.equal(job.exitStatus, 0, job.stderr)
  t.notMatch(job.stdout, /^Linux version 4\.4\.0 /)
  t.equal(recordOf(job.jobId).runtime, 'runc')
})

t.test('under gVisor, ppn=1 gives two busy loops one CPU between them', async t => {
  const loop = 'timeout 5 sh -c "while :; do :; done"'
  const { job } = await runJob(`#!/bin/sh\n${loop} &\n${loop} &\nwait\n`, { config, queue: 'gvisor', resources: 'nodes=1:ppn=1' })
  t.equal(job.exitStatus, 0, job.stderr)
  const { usage } = recordOf(job.jobId)
  // Unlimited, the two loops would use about 10 s of CPU in their 5 s; limited, 5 s and the
  // sandbox's own start (its kernel and gofer are in the cgroup too: about 0.6 s seen).
  t.ok(usage!.cpu.totalSeconds > 2 && usage!.cpu.totalSeconds < 7.5, `cpu ${usage!.cpu.totalSeconds} s in 5 s`)
})

t.test('under gVisor, a job over its mem: the kernel kills the whole sandbox, the record and the owner are told', async t => {
  const { job } = await runJob('#!/bin/sh\necho start\nexec dd if=/dev/zero of=/dev/null bs=200M count=1\n', { config, queue: 'gvisor', resources: 'nodes=1:ppn=1,mem=64mb' })
  // The engine either says 128 for an exec whose sandbox went away (runsc's urpc error in the
  // .ER), or keeps the exec open, and the starter ends it as killed (137) once the sandbox is gone.
  t.ok(job.exitStatus === 128 || job.exitStatus === 137, `exit ${job.exitStatus}: ${job.stderr}`)
  t.match(job.stdout, /^start\ncbatch: .*killed: out of memory\n$/)
  const record = recordOf(job.jobId)
  t.equal(record.oomKilled, true)
  t.equal(record.runtime, 'runsc')
  t.ok(await gone(job.jobId), 'its container is gone')
})

t.test('under gVisor, TM tasks run in the sandbox as the owner; qdel ends the job, but its SIGTERM does not reach it', async t => {
  const tasks = await runJob('#!/bin/sh\nsleep 2\necho done\n', { config, queue: 'gvisor', tasks: ['cat /proc/version', 'id -u'] })
  t.equal(tasks.job.exitStatus, 0, tasks.job.stderr)
  t.match(tasks.job.stdout, /^Linux version 4\.4\.0 /m)
  t.match(tasks.job.stdout, new RegExp(`^${hostId('-u')}$`, 'm'))

  // The owner's home is mounted: the job says there that it runs.
  const marker = `/home/${TEST_USER}/.cbatch-runtime-${process.pid}`
  t.teardown(() => rmSync(marker, { force: true }))
  let signalled = 0
  const { job } = await runJob(`#!/bin/sh\ntrap 'echo got-TERM; exit 42' TERM\ntouch ${marker}\nsleep 60 &\nwait\necho not-reached\n`, {
    config, queue: 'gvisor',
    onStart: pid => {
      const poll = setInterval(() => {
        if (!existsSync(marker)) return
        clearInterval(poll)
        signalled = Date.now()
        process.kill(pid, 'SIGTERM') // cbatch run emulates qdel: SIGTERM, SIGKILL 2 s later
      }, 50)
    },
  })
  t.ok(signalled > 0, 'the job started')
  // The job shell is no host process under gVisor: the starter's SIGTERM has nothing to reach.
  t.notMatch(job.stdout, 'got-TERM')
  t.notMatch(job.stdout, 'not-reached')
  t.equal(job.exitStatus, 256 + 9, 'ended by the SIGKILL after the kill delay')
  t.ok(Date.now() - signalled < 15000)
  t.ok(await gone(job.jobId), 'its container is gone')
})

t.test('a runtime the engine lacks: refused by the prologue, in the owner\'s .ER; config check, doctor and the node check name its line', async t => {
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config, queue: 'nowhere' })
  t.ok(refused(job), job.stderr)
  t.match(job.stderr, `cbatch: queue nowhere runs its jobs under the container runtime ${MISSING}, which this node's engine does not have (it has `)
  t.notMatch(job.stdout, /ran/)
  t.ok(await gone(job.jobId), 'its container is gone')

  const lines = readFileSync(config, 'utf8').split('\n')
  const at = lines.findIndex(l => l.includes(`runtime: ${MISSING}`))
  const line = `${config}:${at + 1}:${lines[at].indexOf(MISSING) + 1}: queues.nowhere.runtime: "${MISSING}" is not a runtime of the engine at ${DOCKER_SOCKET} (it has `
  const check = spawnSync(CBATCH, ['config', 'check', config], { encoding: 'utf8' })
  t.equal(check.status, 1)
  t.match(check.stdout, line)
  t.notMatch(check.stdout, /queues\.gvisor/, 'runsc is the engine\'s')

  const doctor = spawnSync(CBATCH, ['doctor', '--config', config], { encoding: 'utf8' })
  t.match(doctor.stdout, new RegExp(`^ok   runtime runsc: /usr/bin/runsc --network=none: runsc version \\S+`, 'm'), 'the engine\'s runtimes, each with its version')
  t.match(doctor.stdout, /^ok {3}runtime runc: runc \(default\): runc version \S+/m)
  t.match(doctor.stdout, `FAIL config: ${line}`)

  const node = spawnSync(join(hooksFor(join(import.meta.dirname, '../dist'), config), 'nodecheck'), [], { encoding: 'utf8', env: {} })
  t.equal(node.status, 1)
  t.match(node.stdout, `ERROR cbatch: ${line}`, 'pbs_server takes the node out before a job is refused')
})

t.test('config check of a config whose engine cannot be asked: valid, the runtimes said unchecked', async t => {
  // In a directory of root's, where no engine listens.
  const elsewhere = writeConfig(shared.path, `engine: { socket: /run/cbatch-no-engine-${process.pid}.sock }\nqueues:\n  gvisor: { image: ${TEST_IMAGE}, runtime: runsc }\n`)
  const check = spawnSync(CBATCH, ['config', 'check', elsewhere], { encoding: 'utf8' })
  t.equal(check.status, 0, check.stdout)
  t.match(check.stdout, `${elsewhere}: the queues' runtimes were not checked against the engine: Docker engine error (engine info): engine not reachable at /run/cbatch-no-engine-`)
  t.match(check.stdout, /\(warning\)\n$/)
})
