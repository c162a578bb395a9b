// Jobs on several nodes: the mother superior (the main engine) and sister nodes, each with
// its own engine and PBS_HOME (emulator/engines.ts). Sisters make the job's container in
// prologue.parallel, run the job's TM tasks in it through their own starter, and remove
// it in epilogue.parallel; the job starts tasks with pbsdsh over TM, as on a cluster.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { hostname } from 'node:os'
import { emulateJob, type EmulatedJob, type EmulatorOptions } from '../emulator/emulator.ts'
import { startSisters, type SisterNode } from '../emulator/engines.ts'
import { EMULATOR_TOOLS } from '../emulator/tm.ts'
import type { AccountingRecord } from '../lib/job/accounting.ts'
import { ENGINE_SOCKET, IN_CONTAINER, TEST_ENGINE } from './helpers/engine.ts'
import { hostId, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

t.setTimeout(10 * 60 * 1000)
const shared = sharedDir()
t.teardown(shared.dispose)
const accounting = join(shared.path, 'accounting.jsonl')
// MPI queues: the host network (TM and MPI traffic), and the site's TORQUE tools mounted.
const mpiQueue = (network: 'host' | 'none') => `
    image: ${TEST_IMAGE}
    pull: never
    network: ${network}
    allowedImages: ['cbatch-test/**']
    volumes: [{ source: ${shared.path} }, { source: ${EMULATOR_TOOLS}, target: /opt/torque/bin, readOnly: true }]`
// `engine` adds to the engine's settings (a node whose engine is down, below).
const configText = (engine = '') => `engine: { requeuePause: 0${engine} }
log: { file: ${shared.path}/cbatch.log }
accounting: { file: ${accounting} }
queues:
  mpi:${mpiQueue('host')}
  isolated:${mpiQueue('none')}
  capped:${mpiQueue('host')}
    maxTasks: 3
`
const config = writeConfig(shared.path, configText())
/** The config on a node whose engine is down: its socket answers nothing. */
const engineDown = (pbsHome: string) => writeConfig(shared.path, configText(`, kind: ${TEST_ENGINE}, socket: ${pbsHome}/no-engine.sock`))
const { sisters, dispose } = await startSisters(2, config)
t.teardown(dispose)

// This test's jobs only (the emulator's job ids start with its pid): the main engine may run
// other jobs meanwhile, a real pbs_mom's among them.
const jobsOn = (socket = ENGINE_SOCKET) => execFileSync('docker', ['-H', `unix://${socket}`, 'ps', '-a', '--filter', 'label=cbatch.job',
  '--format', '{{.ID}} {{.Label "cbatch.job"}}'], { encoding: 'utf8' }).split('\n').filter(l => l.split(' ')[1]?.startsWith(String(process.pid))).map(l => l.split(' ')[0])
const engines = () => [undefined, ...sisters.map(s => s.engine.socket)]
/** What is left of this file's jobs on each engine, once the detached removers (hooks/remover.ts) had a minute. */
async function leftOnEngines(): Promise<string[][]> {
  for (const until = Date.now() + 60_000; ; await new Promise(r => setTimeout(r, 200))) {
    const left = engines().map(jobsOn)
    if (left.every(l => !l.length) || Date.now() > until) return left
  }
}
const accountingOf = (jobId: string) => readFileSync(accounting, 'utf8').split('\n').filter(Boolean)
  .map(line => JSON.parse(line) as AccountingRecord).filter(r => r.jobId === jobId)

function script(text: string): string {
  const dir = mkdtempSync(join(shared.path, 'job-'))
  chmodSync(dir, 0o755)
  const file = join(dir, 'job.sh')
  writeFileSync(file, `#!/bin/sh\n${text}`, { mode: 0o644 })
  return file
}

function run(text: string, nodes: Pick<SisterNode, 'pbsHome' | 'config'>[], extra: Partial<EmulatorOptions> = {}): Promise<EmulatedJob> {
  return emulateJob({
    script: script(text), user: TEST_USER, queue: 'mpi', resources: `nodes=${nodes.length + 1}:ppn=2`, config,
    hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path, sisters: nodes, ...extra,
  })
}

const WHERE = `sh -c 'echo "task=$PBS_TASKNUM node=$PBS_NODENUM uid=$(id -u) container=$(${IN_CONTAINER} && echo yes || echo no)"'`

t.test('a 2-node job: every task runs in its node\'s container, as the owner, and its exit status comes back', async t => {
  const job = await run(`/opt/torque/bin/pbsdsh ${WHERE}\n/opt/torque/bin/pbsdsh -n 3 sh -c 'exit 7'\necho shell done\n`, sisters.slice(0, 1))
  t.equal(job.exitStatus, 0, job.stderr)
  t.same(job.sisterPrologues?.map(p => p.status), [0])
  const lines = job.stdout.split('\n').filter(l => l.startsWith('task=')).map(l => l.replace(/^task=\d+ /, '')).sort()
  const uid = hostId('-u')
  t.same(lines, [0, 0, 1, 1].map(n => `node=${n} uid=${uid} container=yes`), 'one task per vnode, two per node')
  t.match(job.stdout, /shell done/)
  t.same(job.tmTasks!.filter(x => x.argv[2] === 'exit 7').map(x => [x.node, x.status]), [[1, 7]], 'a task on the sister failed with its own status')
  t.same(new Set(job.tmTasks!.map(x => x.task)).size, 5, 'task numbers are job-wide')
  t.same(await leftOnEngines(), [[], [], []], 'nothing left on any engine')
  const lines2 = accountingOf(job.jobId)
  t.same(lines2.map(r => r.nodeNumber).sort(), [0, 1], 'one accounting line per node')
  t.equal(lines2.find(r => r.nodeNumber === 1)!.exitStatus, undefined, 'a sister is not told the exit status')
  t.equal(lines2.find(r => r.nodeNumber === 0)!.exitStatus, 0)
})

t.test('a 3-node job: pbsdsh -u starts one task on each node; the sisters\' containers are made like the mother superior\'s', async t => {
  const job = await run(`/opt/torque/bin/pbsdsh -u sh -c 'echo "node=$PBS_NODENUM shm=$(df -k /dev/shm | tail -1 | awk "{print \\$2}") id=$(id -un)"'\n`,
    sisters, { resources: 'nodes=3:ppn=2,mem=300mb' })
  t.equal(job.exitStatus, 0, job.stderr)
  const lines = job.stdout.split('\n').filter(l => l.startsWith('node=')).sort()
  // Each node's share of mem=300mb (2 of 6 ppn), and /dev/shm sized by it, not the engine's 64 MB.
  t.same(lines, [0, 1, 2].map(n => `node=${n} shm=${100 * 1024} id=${TEST_USER}`))
  t.same(accountingOf(job.jobId).map(r => [r.nodeNumber, r.usage?.memory.limitBytes]).sort(),
    [[0, 100 * 1024 ** 2], [1, 100 * 1024 ** 2], [2, 100 * 1024 ** 2]])
  t.same(await leftOnEngines(), [[], [], []])
})

t.test('qdel reaches the tasks on every node', async t => {
  const cancel = new AbortController()
  const started = performance.now()
  const pending = run(`/opt/torque/bin/pbsdsh -u sleep 300 &\nsleep 300\n`, sisters, { cancel: cancel.signal, killDelay: 1 })
  // Until every node's container runs its task.
  for (let i = 0; i < 100 && engines().some(e => !jobsOn(e).length); i++) {
    await new Promise(r => setTimeout(r, 200))
  }
  await new Promise(r => setTimeout(r, 1500))
  cancel.abort()
  const job = await pending
  t.ok(performance.now() - started < 60_000, 'the job ended long before its sleeps')
  t.equal(job.exitStatus, 256 + 15, 'the job shell died of SIGTERM')
  t.same(job.tmTasks!.map(x => x.node).sort(), [0, 1, 2])
  t.ok(job.tmTasks!.every(x => x.status > 128), `every task was killed: ${JSON.stringify(job.tmTasks!.map(x => x.status))}`)
  t.same(await leftOnEngines(), [[], [], []])
})

t.test('a sister whose engine is down requeues the job (the node goes down), and nothing is left on the others', async t => {
  const broken = { pbsHome: sisters[1].pbsHome, config: engineDown(sisters[1].pbsHome) }
  const job = await run('echo ran\n', [sisters[0], broken])
  t.equal(job.outcome, 'requeued')
  t.same(job.sisterPrologues!.map(p => p.status), [0, 2], 'the broken sister exits non-zero: pbs_mom marks it down')
  t.notOk(job.exitStatus, 'the job never ran')
  t.notMatch(job.stdout, /ran/)
  t.same(await leftOnEngines(), [[], [], []], 'the working sister\'s container went with epilogue.parallel')
})

t.test('a mother superior whose prologue fails leaves nothing on its sisters, though pbs_mom runs no epilogue.parallel there', async t => {
  const brokenMother = engineDown(sisters[1].pbsHome)
  const job = await run('echo ran\n', sisters.slice(0, 1), { config: brokenMother })
  t.equal(job.outcome, 'requeued', job.stderr)
  t.same(job.sisterPrologues!.map(p => p.status), [0], 'the sister made its container')
  t.equal(job.sisterEpilogues, undefined, 'pbs_mom aborted the sister\'s part without epilogue.parallel')
  const gone = async () => {
    for (let i = 0; i < 40 && jobsOn(sisters[0].engine.socket).length; i++) await new Promise(r => setTimeout(r, 500))
    return jobsOn(sisters[0].engine.socket)
  }
  t.same(await gone(), [], 'the sister\'s guard removed its container once the sister forgot the job')
  t.same(accountingOf(job.jobId).map(r => r.nodeNumber), [1], 'with the sister\'s accounting line')
})

t.test('a job a sister cannot run is refused there with exit 0 (no requeue loop), and its tasks there say why', async t => {
  const strict = { pbsHome: sisters[0].pbsHome, config: writeConfig(shared.path, readFileSync(sisters[0].config, 'utf8')
    .replace('network: host', 'network: host\n    limits: { maxCpus: 1 }')) }
  const job = await run(`/opt/torque/bin/pbsdsh -n 2 true\necho shell ran\n`, [strict])
  t.same(job.sisterPrologues!.map(p => p.status), [0])
  t.equal(job.exitStatus, 0, 'the mother superior ran the job shell')
  t.same(job.tmTasks!.map(x => [x.node, x.status]), [[1, 125]])
  t.match(job.stderr, /cbatch: the job asks for 2 CPUs on this node; its queue allows at most 1/)
  t.notOk(existsSync(join(strict.pbsHome, 'mom_priv/cbatch-refused')) && readdirSync(join(strict.pbsHome, 'mom_priv/cbatch-refused')).length,
    'epilogue.parallel cleared the refusal')
  t.same(await leftOnEngines(), [[], [], []])
})

t.test('a job on several nodes runs in its queue\'s image: #CBATCH image= is refused with the reason', async t => {
  const job = await run('#CBATCH image=cbatch-test/entrypoint:latest\necho ran\n', sisters.slice(0, 1))
  t.equal(job.exitStatus, 125)
  t.match(job.stderr, /runs on 2 nodes.*queue's image/)
  t.same(await leftOnEngines(), [[], [], []])
})

t.test('without the host network, pbsdsh cannot reach pbs_mom (tm_init fails), as on a cluster', async t => {
  const job = await run('/opt/torque/bin/pbsdsh true; echo "pbsdsh=$?"\n', sisters.slice(0, 1), { queue: 'isolated' })
  t.match(job.stdout, /pbsdsh=1/)
  t.match(job.stderr, /pbsdsh: cannot reach pbs_mom .*host network/)
  t.same(job.tmTasks, [])
})

t.test('a job cannot make root hold more than maxTasks starters at once on a node', async t => {
  // The job shell and 4 tasks at once on one node whose queue allows 3 starters: root's
  // starters are tens of MiB each, outside the job's limits.
  const job = await run(`for i in 1 2 3 4; do /opt/torque/bin/pbsdsh -n 0 sh -c 'sleep 3; echo slept' & done; wait\necho shell done\n`, sisters.slice(0, 1),
    { queue: 'capped' })
  t.equal(job.exitStatus, 0, job.stderr)
  const statuses = job.tmTasks!.map(x => x.status)
  t.equal(statuses.length, 4)
  t.ok(statuses.filter(s => s === 125).length >= 2, `at least 2 of 4 tasks refused: ${statuses}`)
  t.ok(statuses.filter(s => s === 0).length <= 2, `at most 2 tasks beside the job shell: ${statuses}`)
  t.match(job.stderr, /cbatch: job \S+ already runs 3 tasks on this node, the most its queue allows \(maxTasks 3\)/)
  t.match(job.stdout, /shell done/)
  // Once they ended, their places are free again.
  const again = await run(`/opt/torque/bin/pbsdsh -n 0 sh -c 'echo again'\n`, sisters.slice(0, 1), { queue: 'capped' })
  t.same(again.tmTasks!.map(x => x.status), [0])
  t.match(again.stdout, /again/)
})

t.test('every node spec form runs, and each node\'s container is sized by that node\'s own share', async t => {
  const quota = `/opt/torque/bin/pbsdsh -u sh -c 'echo "node=$PBS_NODENUM cpus=$(($(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) / $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)))"'\n`
  const host = hostname()
  // Host names make a real mom give the prologues PBS_NUM_NODES=0; PBS_NUM_PPN is the first chunk's on every node.
  for (const [resources, cpus] of [['nodes=1:ppn=2+1:ppn=1', [2, 1]], [`nodes=${host}:ppn=1+${host}-sister1:ppn=2`, [1, 2]], [`nodes=${host}+1:ppn=2`, [1, 2]]] as const) {
    const job = await run(quota, sisters.slice(0, 1), { resources })
    t.equal(job.exitStatus, 0, `${resources}: ${job.stderr}`)
    t.same(job.stdout.split('\n').filter(l => l.startsWith('node=')).sort(), cpus.map((n, i) => `node=${i} cpus=${n}`), resources)
  }
  t.same(await leftOnEngines(), [[], [], []])
})
