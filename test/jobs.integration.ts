// Real jobs, real engine, real non-root user: the foundation end to end.
import t from 'tap'
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { containersLeft, containersOf, hostId, NSS_USER, runJob, sharedDir, testConfig, TEST_USER, writeConfig } from './helpers/jobs.ts'
import { containerName } from '../lib/job/container.ts'
import { DEFAULT_PBS_HOME } from '../emulator/emulator.ts'
import { engineCli } from './helpers/engine.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const config = testConfig(shared.path, `    volumes:
      - { source: ${shared.path} }
`)

t.test('the job runs in its container as its owner, with all their groups', async t => {
  const { job, status } = await runJob(`#!/bin/sh
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
test -e /etc/debian_version && echo on-host || echo in-container
echo "user=$USER job=$PBS_JOBID queue=$PBS_QUEUE pwd=$(pwd)"
`, { config })
  t.equal(job.prologue.status, 0)
  t.equal(job.outcome, 'ran')
  t.equal(job.exitStatus, 0)
  t.equal(status, 0)
  const ids = /uid=(\d+) gid=(\d+) groups=(.*)/.exec(job.stdout)!
  t.equal(ids[1], hostId('-u'))
  t.equal(ids[2], hostId('-g'))
  t.same(ids[3].split(' ').sort(), hostId('-G').split(' ').sort(), 'supplementary groups too')
  t.match(job.stdout, 'in-container')
  t.match(job.stdout, `user=${TEST_USER} job=${job.jobId} queue=batch pwd=/home/${TEST_USER}`)
  t.match(job.stdout, /\ncbatch: cpu \d+\.\d s, cpus [\d.]+ \([\d,-]+\), peak mem [\d.]+ [KM]iB incl\. page cache \([\d.]+ (B|KiB|MiB) at end\), wall 00:00:0\d, exit 0\n$/)
  t.same(await containersLeft(job.jobId), [], 'nothing left behind')
})

t.test('the container goes once pbs_mom is done with the job, not while it still delivers the output', async t => {
  // --keep: the job's files stay, as they do while pbs_mom copies its output and sends the obit.
  const { job } = await runJob('#!/bin/sh\nsleep 300 &\necho done\n', { config, args: ['--keep'] })
  const prefix = jobFilePrefix(job.jobId)
  t.teardown(() => {
    for (const f of ['mom_priv/jobs/%.SC', 'mom_priv/jobs/%.JB', 'spool/%.OU', 'spool/%.ER', 'aux/%']) rmSync(join(DEFAULT_PBS_HOME, f.replace('%', prefix)), { force: true })
  })
  t.equal(job.exitStatus, 0, job.stderr)
  await new Promise(r => setTimeout(r, 3000))
  const [id] = containersOf(job.jobId)
  t.ok(id, 'the container waits for pbs_mom')
  t.equal(engineCli(['inspect', '-f', '{{.State.Running}}', id]).trim(), 'false', 'with no process of the job left in it')
  rmSync(join(DEFAULT_PBS_HOME, 'mom_priv/jobs', `${prefix}.JB`))
  t.same(await containersLeft(job.jobId, 15_000), [], 'and goes once pbs_mom has forgotten the job')
})

t.test('exit status, stdout and stderr come back unmixed', async t => {
  const { job, status } = await runJob(`#!/bin/sh
echo out-1
echo err-1 >&2
echo out-2
echo err-2 >&2
exit 3
`, { config })
  t.equal(job.exitStatus, 3)
  t.equal(status, 3)
  t.match(job.stdout, /^out-1\nout-2\n/)
  t.equal(job.stderr, 'err-1\nerr-2\n')
  t.same(await containersLeft(job.jobId), [])
})

t.test('the stdin line of pbs_mom runs the script with its qsub -F arguments', async t => {
  const { job } = await runJob('#!/bin/sh\necho "args=$# $1 $2"\nread rest && echo "stdin had more: $rest" || echo stdin-empty\n',
    { config, args: ['alpha', 'beta'] })
  t.match(job.stdout, 'args=2 alpha beta\nstdin-empty\n', 'exec replaced the shell: nothing else is read')
})

t.test('files written to a mounted directory belong to the job owner', async t => {
  const target = join(shared.path, 'written-by-job')
  const { job } = await runJob(`#!/bin/sh\necho data > ${target}\necho data > $HOME/.cbatch-home-test\n`, { config })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(readFileSync(target, 'utf8'), 'data\n')
  t.equal(statSync(target).uid, Number(hostId('-u')))
  t.equal(statSync(target).gid, Number(hostId('-g')))
  const home = `/home/${TEST_USER}/.cbatch-home-test`
  t.equal(statSync(home).uid, Number(hostId('-u')))
})

t.test('SIGTERM to the job starter reaches the job inside its container', async t => {
  const marker = join(shared.path, 'term-started')
  let started = 0
  const { job } = await runJob(`#!/bin/sh
trap 'echo got-TERM; exit 42' TERM
touch ${marker}
sleep 60 &
wait
echo not-reached
`, {
    config,
    onStart: pid => {
      const poll = setInterval(() => {
        if (!existsSync(marker)) return
        clearInterval(poll)
        started = Date.now()
        process.kill(pid, 'SIGTERM') // cbatch run emulates qdel: SIGTERM to the starter's session
      }, 50)
    },
  })
  const elapsed = Date.now() - started
  t.ok(started > 0, 'the job started')
  t.match(job.stdout, 'got-TERM')
  t.notMatch(job.stdout, 'not-reached')
  // A real 6.1 mom sends the script line without `exec `: the job shell runs the script as
  // a child, and both get the SIGTERM; the shell, without a trap, ends of it.
  t.equal(job.exitStatus, 256 + 15, 'the job shell ended of the SIGTERM, and shows as on a real mom')
  t.ok(elapsed < 5000, `job ended ${elapsed} ms after SIGTERM`)
  t.same(await containersLeft(job.jobId), [])
})

t.test('the summary line starts its own line after output without a newline; summaryLine: false leaves it out', async t => {
  const { job } = await runJob('#!/bin/sh\nprintf end\n', { config })
  t.match(job.stdout, /^end\ncbatch: cpu [^\n]*, exit 0\n$/)
  const quiet = testConfig(shared.path, '    summaryLine: false\n')
  const { job: without } = await runJob('#!/bin/sh\nprintf end\n', { config: quiet })
  t.equal(without.exitStatus, 0)
  t.equal(without.stdout, 'end', 'the job\'s output alone')
})

t.test('a config warning reaches the node log once per change of the file, not once per job', async t => {
  const warned = testConfig(shared.path, '    maxTasks: 100\n    pidsLimit: 50\n')
  for (let i = 0; i < 2; i++) t.equal((await runJob('#!/bin/sh\ntrue\n', { config: warned })).job.exitStatus, 0)
  const lines = readFileSync(join(shared.path, 'cbatch.log'), 'utf8').trim().split('\n').map(l => JSON.parse(l))
    .filter(l => l.level === 'warn' && l.message.includes(warned))
  t.equal(lines.length, 1, 'two jobs, six hooks: the first validated the file, the others took the kept copy')
  t.match(lines[0], { hook: 'prologue', message: /config warning: .*:\d+:\d+: queues\.batch\.maxTasks: 100 tasks is more than pidsLimit \(50\) processes.*\[tasks-within-pids\]/, rule: 'tasks-within-pids' })
})

t.test('a queue cbatch does not manage runs natively as the owner', async t => {
  const { job } = await runJob('#!/bin/sh\necho "uid=$(id -u) groups=$(id -G)"\ntest -e /etc/debian_version && echo on-host\nexit 5\n',
    { config, args: ['--native-queue'], queue: 'other' })
  t.equal(job.prologue.status, 0)
  t.equal(job.exitStatus, 5)
  t.match(job.stdout, `uid=${hostId('-u')} groups=${hostId('-G')}`)
  t.match(job.stdout, 'on-host')
  t.notMatch(job.stdout, 'cbatch:', 'no container, no summary')
})

t.test('containers are labelled with the version of the package the hooks were built from', async t => {
  const marker = join(shared.path, 'version-running')
  const { version } = JSON.parse(readFileSync(join(import.meta.dirname, '../package.json'), 'utf8'))
  let label = ''
  await runJob(`#!/bin/sh\ntouch ${marker}\nsleep 2\n`, {
    config,
    onStart: () => {
      const poll = setInterval(() => {
        if (!existsSync(marker)) return
        clearInterval(poll)
        label = engineCli(['ps', '--filter', 'label=cbatch.version', '--format', '{{.Label "cbatch.version"}}']).trim()
      }, 50)
    },
  })
  t.equal(label.split('\n')[0], version)
})

t.test('a user only a directory service knows has a name, and names for their groups, in the container', async t => {
  const { job } = await runJob('#!/bin/sh\nid -un; whoami; id -Gn\nstat -c %U "$HOME"\ngrep "^cbatchnss:" /etc/passwd\n', { config, user: NSS_USER })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(job.stdout.split('cbatch: cpu')[0],
    'cbatchnss\ncbatchnss\ncbatchnss cbatchnssextra\ncbatchnss\ncbatchnss:x:2001:2001:NSS-only test user:/home/cbatchnss:/bin/sh\n')
  t.notOk(existsSync(join(DEFAULT_PBS_HOME, 'mom_priv/cbatch-accounts', containerName(job.jobId, join(DEFAULT_PBS_HOME, 'mom_priv')))), 'its account files go with the job')
})

t.test('the host\'s tool and library paths stay out of the container; the image keeps its own', async t => {
  // The image sets PATH=/image/bin:… and LD_LIBRARY_PATH=/image/lib; the job comes with the host's (qsub -V).
  const queue = (extra: string) => writeConfig(shared.path,
    `log: { file: ${shared.path}/cbatch.log }\nqueues:\n  batch: { image: cbatch-test/entrypoint:latest, pull: never${extra} }\n`)
  const script = '#!/bin/sh\necho "PATH=$PATH"\necho "LD=$LD_LIBRARY_PATH MINE=$MINE O_PATH=${PBS_O_PATH:+set}"\n'
  const vars = { PATH: '/host/only/bin:/usr/bin:/bin', LD_LIBRARY_PATH: '/host/lib', MINE: 'mine' }
  const { job } = await runJob(script, { config: queue(''), vars })
  t.match(job.stdout, 'PATH=/image/bin:/usr/local/bin:/usr/bin:/bin\nLD=/image/lib ', 'the image\'s PATH and libraries (its ENV)')
  t.match(job.stdout, 'MINE=mine O_PATH=set\n', 'the job\'s own variables and TORQUE\'s come through')
  const passed = (await runJob(script, { config: queue(', environment: { drop: [] }'), vars })).job
  t.match(passed.stdout, 'PATH=/host/only/bin:/usr/bin:/bin\nLD=/host/lib ', 'a queue that lets them through')
})

t.test('an image\'s entrypoint runs only where the queue says so, around the job shell too', async t => {
  const script = '#!/bin/sh\necho "entered=${ENTERED:-no}"\n'
  const queue = (entrypoint: boolean) => writeConfig(shared.path,
    `log: { file: ${shared.path}/cbatch.log }\nqueues:\n  batch: { image: cbatch-test/entrypoint:latest, pull: never, entrypoint: ${entrypoint} }\n`)
  t.match((await runJob(script, { config: queue(false) })).job.stdout, 'entered=no\n', 'off by default: the holder and the job shell run bare')
  t.match((await runJob(script, { config: queue(true) })).job.stdout, 'entered=yes\n')
})
