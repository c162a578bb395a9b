// An adversarial job owner, as a real non-root user through `cbatch run`: every attempt
// fails and the node is unchanged. docs/security.md maps each threat to these tests.
import t from 'tap'
import { createHash } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseConfig } from '../lib/config.ts'
import { containerName } from '../lib/container.ts'
import { Engine } from '../lib/engine.ts'
import { cleanupJob, prepareJob } from '../lib/lifecycle.ts'
import { hostId, PROLOGUE, recordJob, REGISTRY_IMAGE, runHook, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const shared = sharedDir()
t.teardown(shared.dispose)
const allowed = join(shared.path, 'allowed')
mkdirSync(allowed, { mode: 0o777 })
const yaml = `log: { file: ${shared.path}/cbatch.log }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: missing
    pidsLimit: 32
    allowedImages: ['127.0.0.1:5000/cbatch-test/*']
    userMounts: [{ source: ${allowed} }]
    scratch: { base: ${shared.path}/scratch, target: /scratch }
    volumes: [{ source: ${shared.path} }]
`
const config = writeConfig(shared.path, yaml)
const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
const uid = hostId('-u')

t.test('cannot become root: setuid binary, su, /etc/passwd', async t => {
  const passwd = sha('/etc/passwd')
  const { job } = await runJob(`#!/bin/sh
echo "suid=$(busybox-suid id -u) suid-sh=$(busybox-suid sh -c 'id -u')"
su -c 'id -u' root </dev/null >/dev/null 2>&1; echo "su=$?"
echo 'evil::0:0::/:/bin/sh' >> /etc/passwd 2>/dev/null; echo "passwd=$?"
grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '
`, { config })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, `suid=${uid} suid-sh=${uid}\n`, 'no-new-privileges: setuid does not elevate')
  t.notMatch(job.stdout, /su=0\n/)
  t.notMatch(job.stdout, /passwd=0\n/)
  t.match(job.stdout, 'CapPrm: 0000000000000000\nCapEff: 0000000000000000\n')
  t.match(job.stdout, 'NoNewPrivs: 1\nSeccomp: 2\n', 'Docker\'s default seccomp filter is on')
  t.equal(sha('/etc/passwd'), passwd, 'the node\'s /etc/passwd is unchanged')
})

t.test('cannot mount, load a module, reach the engine or read /etc/shadow', async t => {
  const { job } = await runJob(`#!/bin/sh
mount -t tmpfs none /tmp 2>/dev/null; echo "mount=$?"
insmod /bin/busybox 2>&1 | grep -q 'not permitted' && echo insmod=denied
test -e /var/run/docker.sock || test -e /run/docker.sock; echo "socket=$?"
cat /etc/shadow >/dev/null 2>&1; echo "shadow=$?"
`, { config })
  t.match(job.stdout, /mount=[1-9]\d*\n/)
  t.match(job.stdout, 'insmod=denied\n')
  t.match(job.stdout, 'socket=1\n')
  t.match(job.stdout, /shadow=[1-9]\d*\n/)
})

t.test('cannot see or signal the processes of another running job', async t => {
  const marker = join(shared.path, 'victim-running')
  const victim = runJob(`#!/bin/sh\ntouch ${marker}\nsleep 6\necho victim-done\nexit 7\n`, { config })
  for (let i = 0; i < 100 && !existsSync(marker); i++) await new Promise(r => setTimeout(r, 100))
  t.ok(existsSync(marker), 'the victim is running')
  const { job: attacker } = await runJob(`#!/bin/sh
echo "visible=$(ps -o args | grep -c '^sleep 6')"
kill -9 -1 2>/dev/null
pkill -9 sleep 2>/dev/null
echo attacker-done
`, { config })
  t.match(attacker.stdout, 'visible=0\n', 'another job\'s processes are not even visible')
  const { job } = await victim
  t.equal(job.exitStatus, 7, 'the victim ran to its end')
  t.match(job.stdout, 'victim-done')
})

t.test('a fork bomb stops at the pids limit', async t => {
  // The bomb runs in a subshell: a shell whose fork fails gives up. Past the limit even
  // $(...) cannot fork, so the job counts with builtins only.
  const { job } = await runJob(`#!/bin/sh
(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i + 1)); done) 2>/dev/null
read running < /sys/fs/cgroup/pids/pids.current
read limit < /sys/fs/cgroup/pids/pids.max
echo "running=$running limit=$limit"
trap '' TERM
kill 0
echo survived
`, { config })
  const [, running, limit] = /running=(\d+) limit=(\d+)/.exec(job.stdout) ?? []
  t.equal(limit, '32')
  t.ok(Number(running) >= 28 && Number(running) <= 32, `${running} processes in the container: the other forks failed`)
  t.match(job.stdout, 'survived\n', 'the job itself goes on')
})

t.test('a disallowed image or mount aborts the job, saying what is allowed', async t => {
  let { job } = await runJob('#!/bin/sh\n#CBATCH image=evil/miner:1\necho ran\n', { config })
  t.equal(job.prologue.status, 1)
  t.equal(job.stderr, `cbatch: image evil/miner:1 is not allowed in this queue; allowed: ${TEST_IMAGE}, 127.0.0.1:5000/cbatch-test/*\n`)
  ;({ job } = await runJob('#!/bin/sh\necho ran\n', { config, vars: { CBATCH_IMAGE: 'evil/miner:1' } }))
  t.equal(job.prologue.status, 1, 'CBATCH_IMAGE from qsub -v is checked the same way')
  ;({ job } = await runJob('#!/bin/sh\n#CBATCH mount=/etc\necho ran\n', { config }))
  t.equal(job.prologue.status, 1)
  t.equal(job.stderr, `cbatch: mount /etc is not allowed in this queue; allowed below: ${allowed}\n`)
  t.notMatch(job.stdout, 'ran')
})

t.test('an allowed image and mount are granted', async t => {
  mkdirSync(join(allowed, 'project'), { recursive: true, mode: 0o777 })
  const { job } = await runJob(`#!/bin/sh
#PBS -N granted
#CBATCH image=${REGISTRY_IMAGE} mount=${allowed}/project:ro
echo x > ${allowed}/project/f 2>/dev/null; echo "write=$?"
ls -d ${allowed}/project && echo "scratch=$CBATCH_SCRATCH" && touch /scratch/mine && echo scratch-ok
`, { config })
  t.equal(job.prologue.status, 0, job.stderr)
  t.match(job.stdout, /write=[1-9]/, 'read-only as asked')
  t.match(job.stdout, 'scratch=/scratch\nscratch-ok\n')
  t.match(readFileSync(`${shared.path}/cbatch.log`, 'utf8'), `started from ${REGISTRY_IMAGE}`)
  t.notOk(existsSync(join(shared.path, 'scratch', `cbatch-${job.jobId}`)), 'the scratch directory is gone with the job')
})

t.test('injection through image names, directives and variables is refused', async t => {
  const pwned = join(shared.path, 'pwned')
  for (const [script, vars] of [
    [`#!/bin/sh\n#CBATCH image=busybox;touch${'${IFS}'}${pwned}\n`, {}],
    [`#!/bin/sh\n#CBATCH image=$(touch ${pwned})\n`, {}],
    [`#!/bin/sh\n#CBATCH mount=${allowed}/../../etc\n`, {}],
    [`#!/bin/sh\n#CBATCH mount=${allowed}/x;touch${'${IFS}'}${pwned}\n`, {}],
    ['#!/bin/sh\necho ran\n', { CBATCH_IMAGE: `\`touch ${pwned}\`` }],
    [`#!/bin/sh\n#CBATCH privileged=true\n`, {}],
  ] as const) {
    const { job } = await runJob(script, { config, vars })
    t.equal(job.prologue.status, 1, script)
    t.match(job.stderr, /^cbatch: .*(not an image reference|plain absolute path|unknown directive)/)
  }
  t.notOk(existsSync(pwned))
})

t.test('variables the owner sets with qsub -v change nothing of cbatch', async t => {
  const markers = { js: join(shared.path, 'node-options-ran'), so: join(shared.path, 'ld-preload-ran') }
  writeFileSync(join(shared.path, 'evil.js'), `require('fs').writeFileSync(${JSON.stringify(markers.js)}, String(process.getuid()))\n`)
  const evilSo = join(shared.path, 'evil.so')
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-x', 'c', '-o', evilSo, '-'], {
    input: `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void pwn(void) { FILE *f = fopen("${markers.so}", "w"); if (f) { fprintf(f, "%d", getuid()); fclose(f); } }\n`,
  })
  t.equal(cc.status, 0, 'built a preload library')
  const { job } = await runJob('#!/bin/sh\necho "job=$PBS_JOBID user=$USER uid=$(id -u)"\n', {
    config,
    vars: { PBS_JOBID: '1.other', USER: 'root', NODE_OPTIONS: `--require=${shared.path}/evil.js`, LD_PRELOAD: evilSo },
  })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, `job=${job.jobId} user=${TEST_USER} uid=${uid}\n`, 'pbs_mom\'s own values win')
  t.notOk(existsSync(markers.js), 'NODE_OPTIONS never reached a hook')
  t.notOk(existsSync(markers.so), 'LD_PRELOAD never reached a root process')
})

t.test('huge and odd variable values reach the job intact', async t => {
  const big = 'x'.repeat(100_000)
  const odd = 'a b\tc;$(id)`id`"q\'\\ é ✓'
  const { job } = await runJob('#!/bin/sh\nprintf "%s" "$BIG" | wc -c\nprintf "[%s]\\n" "$ODD"\n', { config, vars: { BIG: big, ODD: odd } })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, `100000\n[${odd}]\n`)
})

t.test('a job id cannot reach another job\'s container, nor another user', async t => {
  const engine = new Engine({ socket: '/var/run/docker.sock', timeoutMs: 30_000, pullTimeoutMs: 30_000 })
  const jobId = `${process.pid}9.victim`
  t.teardown(() => cleanupJob({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0 }, engine))
  await prepareJob({ jobId, user: TEST_USER, group: '', jobName: 'v', resources: '', queue: 'batch', account: '' }, parseConfig(yaml), engine, PROLOGUE)
  const jobFile = recordJob(jobId)
  t.teardown(() => rmSync(jobFile, { force: true }))
  const starter = (env: Record<string, string>) => runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_QUEUE: 'batch', HOME: '/tmp', USER: TEST_USER, PBS_JOBID: jobId, ...env }, config, input: 'id -u\n' })
  for (const other of [`${process.pid}9`, `${jobId}*`, `${jobId.split('.')[0]}.*`, '']) {
    const r = starter({ PBS_JOBID: other })
    t.equal(r.status, 125, `PBS_JOBID=${other}`)
    t.equal(r.stdout, '')
  }
  const asOther = starter({ USER: 'cbatchdemo' })
  t.equal(asOther.status, 125)
  t.match(asOther.stderr, `job ${jobId} belongs to ${TEST_USER}, not cbatchdemo`)
  const otherQueue = starter({ PBS_QUEUE: 'unmanaged' })
  t.equal(otherQueue.status, 125, 'a queue claim that is not the job file\'s')
  t.equal(otherQueue.stdout, '')
  t.equal(starter({}).stdout, `${uid}\n`, 'the owner, and only they, gets in')
  // pbs_mom's record and the prologue's labels must agree on the owner.
  recordJob(jobId, 'batch', 'cbatchdemo')
  const relabelled = starter({ USER: 'cbatchdemo' })
  t.equal(relabelled.status, 125)
  t.match(relabelled.stderr, `the container of job ${jobId} does not belong to cbatchdemo`)
})

t.test('a container that only has a job\'s name is neither entered nor removed', async t => {
  const engine = new Engine({ socket: '/var/run/docker.sock', timeoutMs: 30_000, pullTimeoutMs: 30_000 })
  const jobId = `${process.pid}9.lookalike`
  const name = containerName(jobId)
  execFileSync('docker', ['create', '--name', name, '--label', `cbatch.job=${jobId}.other`, '--network', 'none', TEST_IMAGE, 'sleep', '60'])
  t.teardown(() => { spawnSync('docker', ['rm', '-f', name]) })
  const jobFile = recordJob(jobId)
  t.teardown(() => rmSync(jobFile, { force: true }))
  const r = runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_QUEUE: 'batch', HOME: '/tmp', USER: TEST_USER, PBS_JOBID: jobId }, config, input: 'id -u\n' })
  t.equal(r.status, 125)
  t.match(r.stderr, `no container for job ${jobId}`)
  t.equal(await cleanupJob({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0 }, engine), undefined)
  t.equal(execFileSync('docker', ['inspect', '-f', '{{.Name}}', name], { encoding: 'utf8' }).trim(), `/${name}`, 'still there')
})

t.test('the node log holds no secret of the node', async t => {
  t.notMatch(execFileSync('cat', [`${shared.path}/cbatch.log`], { encoding: 'utf8' }), /root:\$|shadow/)
})

t.test('a queue with a read-only root filesystem keeps a writable /tmp', async t => {
  const readOnly = writeConfig(shared.path, `queues:\n  batch: { image: ${TEST_IMAGE}, pull: never, readOnlyRootfs: true }\n`)
  const { job } = await runJob(`#!/bin/sh
touch /usr/x 2>/dev/null; echo "rootfs=$?"
touch /tmp/x && echo tmp-ok
grep ' /tmp ' /proc/mounts | cut -d' ' -f3
`, { config: readOnly })
  t.match(job.stdout, /rootfs=[1-9]\d*\ntmp-ok\ntmpfs\n/)
})
