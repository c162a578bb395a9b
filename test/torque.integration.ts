// What a real TORQUE 6.1 pbs_mom does that an earlier emulator hid (docs/torque-contract.md:
// "The job starter", "When a prologue fails", "When the job file is written", "Files and
// homes"): limits on the starter, cput, umask, refusals the owner never saw, a job file
// written late, array job files. Real jobs through `cbatch run`.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../lib/policy/parse.ts'
import { containerName } from '../lib/job/container.ts'
import { DEFAULT_PBS_HOME } from '../emulator/emulator.ts'
import { engineCli, loadedName, testEngine, withTestEngine } from './helpers/engine.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { prepareJob } from '../lib/job/prologue.ts'
import { containersLeft, containersOf, PROLOGUE, preparedJob, recordJob, refused, REGISTRY_IMAGE, runHook, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig, cookieOf } from './helpers/jobs.ts'
import { jobContext } from '../lib/torque/job.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const logs = join(shared.path, 'logs')
mkdirSync(logs, { mode: 0o755 })
const yaml = `log: { file: ${logs}/cbatch.log }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
    allowedImages: ['127.0.0.1:5000/cbatch-test/*']
`
const config = writeConfig(shared.path, yaml)

t.test('the limits pbs_mom puts on the starter never break it, and the job gets them', async t => {
  for (const queue of ['batch', 'unmanaged']) {
    for (const resources of ['nodes=1:ppn=1,vmem=512mb', 'nodes=1:ppn=1,mem=48mb', 'nodes=1:ppn=1,mem=32mb,pcput=100,file=1mb']) {
      const { job } = await runJob('#!/bin/sh\necho "as=$(ulimit -S -v) data=$(ulimit -S -d) cpu=$(ulimit -S -t)"\n', { config, queue, resources })
      t.equal(job.exitStatus, 0, `${queue} ${resources}: ${job.stderr}`)
      if (queue === 'unmanaged') {
        // Natively, exactly what pbs_mom set: vmem -> RLIMIT_AS, mem (one node) -> RLIMIT_DATA, pcput -> RLIMIT_CPU.
        const expected = resources.includes('vmem') ? 'as=524288 data=unlimited cpu=unlimited'
          : resources.includes('48mb') ? 'as=unlimited data=49152 cpu=unlimited' : 'as=unlimited data=32768 cpu=100'
        t.match(job.stdout, `${expected}\n`, `${queue} ${resources}`)
      } else {
        // In a container: memory through the cgroup (the engine cannot set RLIMIT_AS), pcput as RLIMIT_CPU.
        t.match(job.stdout, resources.includes('pcput') ? / cpu=100\n/ : / cpu=unlimited\n/, `${queue} ${resources}`)
      }
    }
  }
})

t.test('cput is enforced on a container job as pbs_mom would, with its message', async t => {
  const started = Date.now()
  const { job } = await runJob('#!/bin/sh\ntrap "echo terminated; exit 3" TERM\nwhile :; do :; done\n', { config, resources: 'nodes=1:ppn=1,cput=2' })
  t.match(job.stderr, /^=>> PBS: job killed: cput \d+ exceeded limit 2\n/)
  t.match(job.stdout, 'terminated\n', 'SIGTERM first: the job may save its state')
  t.equal(job.exitStatus, 256 + 15, 'the job shell (which runs the script) ended of the SIGTERM, shown as TORQUE shows it')
  t.ok(Date.now() - started < 20_000, 'long before the loop would end')
})

t.test('the job runs with pbs_mom\'s umask (0077), in a container or not', async t => {
  for (const queue of ['batch', 'unmanaged']) {
    const { job } = await runJob('#!/bin/sh\numask\ncd "$HOME" && rm -f cbatch-umask && touch cbatch-umask && stat -c %a cbatch-umask && rm cbatch-umask\n', { config, queue })
    t.equal(job.stdout.split('\n').slice(0, 2).join(' '), '0077 600', queue)
  }
})

t.test('a refused job tells its owner why, in the .ER pbs_mom delivers', async t => {
  const { job } = await runJob('#!/bin/sh\n#CBATCH image=evil/miner:1\necho ran\n', { config })
  t.equal(job.outcome, 'ran', 'the prologue exits 0: pbs_mom will deliver the job\'s output')
  t.ok(refused(job))
  t.equal(job.stderr, `cbatch: image evil/miner:1 is not allowed in this queue; allowed: ${TEST_IMAGE}, 127.0.0.1:5000/cbatch-test/*\n`,
    'one line, the reason; nothing ran')
  t.equal(job.stdout, '')
  t.same(await containersLeft(job.jobId), [])
  t.notOk(existsSync(join(DEFAULT_PBS_HOME, 'mom_priv/cbatch-refused', job.jobId)), 'the epilogue cleared the record')
})

t.test('qsub -v CBATCH_IMAGE cannot choose the image: the job is told so, and #CBATCH image= is the way', async t => {
  const { job } = await runJob('#!/bin/sh\necho ran\n', { config, vars: { CBATCH_IMAGE: REGISTRY_IMAGE } })
  t.equal(job.exitStatus, 125)
  t.notMatch(job.stdout, 'ran')
  t.match(job.stderr, `cbatch: the job asked for image ${REGISTRY_IMAGE} with CBATCH_IMAGE, which cannot choose the image; its container runs ${loadedName(TEST_IMAGE)}. Ask with a #CBATCH image= line`)
  const { job: asked } = await runJob(`#!/bin/sh\n#CBATCH image=${REGISTRY_IMAGE}\necho ran\n`, { config })
  t.equal(asked.exitStatus, 0, asked.stderr)
  t.match(readLog(), new RegExp(`"job":"${asked.jobId}","level":"info","message":"container .* started from ${REGISTRY_IMAGE.replace(/[.]/g, '\\.')}`))
})

t.test('a job is never run in another image than its CBATCH_IMAGE names', async t => {
  // As if the prologue had not seen the job file: the container has the queue's image.
  const jobId = `${process.pid}1.late`
  await preparedJob(t, jobId, yaml)
  const starter = (image: string) => runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_QUEUE: 'batch', HOME: '/tmp', USER: TEST_USER, PBS_JOBID: jobId, PBS_JOBCOOKIE: cookieOf(jobId), CBATCH_IMAGE: image }, config, input: 'echo ran\n' })
  const other = starter(REGISTRY_IMAGE)
  t.equal(other.status, 125)
  t.equal(other.stdout, '')
  t.match(other.stderr, `cbatch: the job asked for image ${REGISTRY_IMAGE} with CBATCH_IMAGE, which cannot choose the image`)
  t.equal(starter(TEST_IMAGE.replace(/:latest$/, '')).stdout, 'ran\n', 'the same image, tag implied')
})

t.test('array sub-jobs are known by their files (N-i.host.JB), never taken for orphans', async t => {
  const engine = testEngine()
  const jobId = `${process.pid}[3].array`
  const jobFile = recordJob(jobId)
  t.match(jobFile, `${process.pid}-3.array.JB`)
  t.teardown(() => {
    rmSync(jobFile, { force: true })
    return cleanupJob({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine)
  })
  await prepareJob(jobContext({ jobId, user: TEST_USER, group: '', jobName: 'a', resources: '', queue: 'batch', account: '' }, {}), parseConfig(withTestEngine(yaml)), engine, PROLOGUE)
  const orphans = await collectOrphans(engine, { batch: PROLOGUE.batch, graceSeconds: 0, dryRun: true })
  t.notOk(orphans.some(c => c.labels['cbatch.job'] === jobId), 'a running array sub-job is not an orphan')
  t.equal(containersOf(jobId).length, 1)
  t.ok(engineCli(['inspect', '-f', '{{.Name}}', containerName(jobId, PROLOGUE.batch.stateDir)]))
})

function readLog(): string {
  return execFileSync('cat', [join(logs, 'cbatch.log')], { encoding: 'utf8' })
}

t.test('an array sub-job runs from its N-i.host files, in its own container', async t => {
  const { job } = await runJob('#!/bin/sh\necho "id=$PBS_JOBID"\n', { config, arrayIndex: 2 })
  t.match(job.jobId, /^\d+\[2\]\./)
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, `id=${job.jobId}\n`)
  t.match(readLog(), `"job":"${job.jobId}","level":"info","message":"container cbatch-`)
})

t.test('a job shell killed by a signal shows as 256+N, as TORQUE shows it natively', async t => {
  // The script runs as a child of the job shell (the script line comes without `exec `).
  const { job } = await runJob('#!/bin/sh\nkill -KILL $PPID\n', { config, queue: 'unmanaged' })
  t.equal(job.exitStatus, 256 + 9)
})

t.test('TORQUE built with cgroups: the container below the job\'s cgroup, all of mem its own, nothing left behind', async t => {
  const torque = writeConfig(shared.path, `log: { file: ${logs}/cbatch.log }
queues:
  batch: { image: ${TEST_IMAGE}, pull: never, cgroupParent: torque, limits: { cpu: cpuset } }
`)
  // 84 MiB of a 96 MiB job in its /tmp (tmpfs: charged to its memory): the starter's own
  // heap (~17 MiB charged) in the same cgroup would make the kernel kill the job.
  const { job } = await runJob(`#!/bin/sh
dd if=/dev/zero of=/tmp/fill bs=1M count=84 2>/dev/null && echo filled
grep -o ':memory:/torque/[^/]*/' /proc/self/cgroup
nproc
`, { config: torque, resources: 'nodes=1:ppn=1,mem=96mb', torqueCgroups: '0' })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(job.stdout.split('\n').slice(0, 3).join('|'), `filled|:memory:/torque/${job.jobId}/|1`, 'all its memory, pinned to TORQUE\'s cpuset')
  t.notMatch(job.stderr, 'out of memory')
  t.same(job.cgroupLeftovers, [], 'pbs_mom removed its directories, cbatch those the engine made')
})

t.test('qsub -j oe keeps the order of stdout and stderr lines, as natively', async t => {
  const script = `#!/bin/sh\ni=0; while [ $i -lt 200 ]; do echo "out $i"; echo "err $i" >&2; i=$((i + 1)); done\n`
  const expected = Array.from({ length: 200 }, (_, i) => `out ${i}\nerr ${i}\n`).join('')
  for (const queue of ['batch', 'unmanaged']) {
    const { job } = await runJob(script, { config, queue, join: true })
    t.equal(job.stdout.split('cbatch: cpu')[0], expected, queue)
  }
  const { job } = await runJob(script, { config })
  t.equal(job.stderr, Array.from({ length: 200 }, (_, i) => `err ${i}\n`).join(''), 'without -j oe, apart and in order')
})

t.test('the job writes its .OU and .ER itself: no process copies its output', async t => {
  const script = '#!/bin/sh\nreadlink /proc/self/fd/1; readlink /proc/self/fd/2\necho to-err >&2\n'
  const { job } = await runJob(script, { config })
  t.equal(job.stdout.split('cbatch: cpu')[0], '/.cbatch/stdout\n/.cbatch/stderr\n', 'the job\'s own output files, mounted')
  t.equal(job.stderr, 'to-err\n')
  const joined = (await runJob(script, { config, join: true })).job
  t.equal(joined.stdout.split('cbatch: cpu')[0], '/.cbatch/stdout\n/.cbatch/stdout\nto-err\n', '-j oe: one file')
  const native = (await runJob(script, { config, queue: 'unmanaged' })).job
  t.match(native.stdout, /\.OU\n.*\.ER\n/, 'natively, pbs_mom\'s own files as they are')
})
