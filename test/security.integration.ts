// An adversarial job owner, as a real non-root user through `cbatch run`: every attempt
// fails and the node is unchanged. docs/security.md maps each threat to these tests.
import t from 'tap'
import { createHash } from 'node:crypto'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { containerName } from '../lib/job/container.ts'
import { ENGINE_SOCKET, engineCli, engineCliQuiet, testEngine } from './helpers/engine.ts'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { testSpec } from './helpers/fake-engine.ts'
import { hostId, preparedJob, PROLOGUE, recordJob, refused, REGISTRY_IMAGE, runHook, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig, cookieOf } from './helpers/jobs.ts'

t.setTimeout(10 * 60 * 1000)
const shared = sharedDir()
t.teardown(shared.dispose)
const allowed = join(shared.path, 'allowed')
mkdirSync(allowed, { mode: 0o777 })
// Scratch bases, where only root may make names (never in the shared, sticky directory).
const scratchRoot = `/var/lib/cbatch-test/security-${process.pid}`
mkdirSync(scratchRoot, { recursive: true, mode: 0o755 })
t.teardown(() => rmSync(scratchRoot, { recursive: true, force: true }))
const yaml = `log: { file: ${shared.path}/cbatch.log }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: missing
    pidsLimit: 32
    allowedImages: ['127.0.0.1:5000/cbatch-test/*']
    userMounts: [{ source: ${allowed} }]
    scratch: { base: ${scratchRoot}/scratch, target: /scratch }
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
test -e /var/run/docker.sock || test -e /run/docker.sock || test -e /run/podman/podman.sock || test -e ${ENGINE_SOCKET}; echo "socket=$?"
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
  t.ok(refused(job), job.stderr)
  t.equal(job.stderr, `cbatch: image evil/miner:1 is not allowed in this queue; allowed: ${TEST_IMAGE}, 127.0.0.1:5000/cbatch-test/*\n`)
  ;({ job } = await runJob('#!/bin/sh\necho ran\n', { config, vars: { CBATCH_IMAGE: 'evil/miner:1' } }))
  t.ok(refused(job), 'CBATCH_IMAGE from qsub -v is checked the same way')
  ;({ job } = await runJob('#!/bin/sh\n#CBATCH mount=/etc\necho ran\n', { config }))
  t.ok(refused(job), job.stderr)
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
  t.notOk(existsSync(join(scratchRoot, 'scratch', `cbatch-${job.jobId}`)), 'the scratch directory is gone with the job')
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
    t.ok(refused(job), script)
    t.match(job.stderr, /^cbatch: .*(not an image reference|plain absolute path|unknown directive|with CBATCH_IMAGE, which cannot choose the image)/)
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
  const jobId = `${process.pid}9.victim`
  await preparedJob(t, jobId, yaml)
  const starter = (env: Record<string, string>) => runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_QUEUE: 'batch', HOME: '/tmp', USER: TEST_USER, PBS_JOBID: jobId, PBS_JOBCOOKIE: cookieOf(jobId), ...env }, config, input: 'id -u\n' })
  for (const other of [`${process.pid}9`, `${jobId}*`, `${jobId.split('.')[0]}.*`, '']) {
    const r = starter({ PBS_JOBID: other })
    t.equal(r.status, 125, `PBS_JOBID=${other}`)
    t.equal(r.stdout, '')
  }
  // A TM task of another job names this one (pbsdsh -e PBS_JOBID=…,HOME=…): without this
  // job's cookie it is no task of it, as the job shell or as any task number.
  for (const forged of <Record<string, string>[]>[{ PBS_JOBCOOKIE: cookieOf('1.attacker') }, { PBS_JOBCOOKIE: '' }, { PBS_TASKNUM: '2', PBS_JOBCOOKIE: cookieOf('1.attacker'), USER: 'root' }]) {
    const r = starter(forged)
    t.equal(r.status, 125, JSON.stringify(forged))
    t.equal(r.stdout, '')
    t.match(r.stderr, `not one of job ${jobId}'s: its PBS_JOBCOOKIE is not the job's`)
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
  const engine = testEngine()
  const jobId = `${process.pid}9.lookalike`
  const name = containerName(jobId, PROLOGUE.batch.stateDir)
  engineCli(['create', '--name', name, '--label', `cbatch.job=${jobId}.other`, '--network', 'none', TEST_IMAGE, 'sleep', '60'])
  t.teardown(() => engineCliQuiet(['rm', '-f', name]))
  const jobFile = recordJob(jobId)
  t.teardown(() => rmSync(jobFile, { force: true }))
  const r = runHook('jobstarter', ['/bin/sh'],
    { env: { PBS_QUEUE: 'batch', HOME: '/tmp', USER: TEST_USER, PBS_JOBID: jobId, PBS_JOBCOOKIE: cookieOf(jobId) }, config, input: 'id -u\n' })
  t.equal(r.status, 125)
  t.match(r.stderr, `no container for job ${jobId}`)
  t.equal(await cleanupJob({ jobId, user: TEST_USER, queue: 'batch', exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine), undefined)
  t.equal(engineCli(['inspect', '-f', '{{.Name}}', name]).trim().replace(/^\//, ''), name, 'still there')
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

// ---- Round 2: nothing a root process does may be steered by what the owner controls.
// The owner (TEST_USER) plants links, swaps paths while the hooks run, sets hostile
// variables and asks for absurd sizes. Canaries below root-only directories must stay as
// they are, and nothing may be created or chowned outside the job's own places.
const attacker = { uid: Number(uid), gid: Number(hostId('-g')) }
/** A shell command run on the host as the attacker. */
const asAttacker = (command: string) => spawnSync('setpriv', [`--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--init-groups', '--',
  '/bin/sh', '-c', command], { encoding: 'utf8' })
const rootOnly = join(shared.path, 'root-only')
mkdirSync(rootOnly, { mode: 0o755 })
const canaries = join(shared.path, 'canaries')
mkdirSync(canaries, { mode: 0o755 })
const canary = join(canaries, 'canary')
writeFileSync(canary, 'root\'s own\n', { mode: 0o644 })
const canaryState = () => `${sha(canary)} ${statSync(canary).uid} ${statSync(canary).mode.toString(8)} ${readdirSync(canaries).sort().join(',')}`
const pristine = canaryState()
// The attacker's own corner, inside the one root the queue offers for mounts.
const corner = join(allowed, 'corner')
mkdirSync(corner, { mode: 0o755 })
chownSync(corner, attacker.uid, attacker.gid)
// Another user's private directory, closed to the attacker by its parent.
const victimHome = join(shared.path, 'victim')
mkdirSync(join(victimHome, 'private'), { recursive: true, mode: 0o700 })
chmodSync(victimHome, 0o700)
chownSync(victimHome, Number(hostId('-u', 'cbatchdemo')), Number(hostId('-g', 'cbatchdemo')))
const accounting = join(rootOnly, 'accounting.jsonl')
const hostile = writeConfig(shared.path, `log: { file: ${rootOnly}/cbatch.log }
accounting: { file: ${accounting} }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
    userMounts: [{ source: ${allowed} }]
    scratch: { base: ${scratchRoot}/hostile, target: /scratch }
    tmpSize: 8mb
`)
const accounted = (jobId: string) => readFileSync(accounting, 'utf8').split('\n').filter(Boolean)
  .map(l => JSON.parse(l) as { jobId: string; usage?: object }).find(r => r.jobId === jobId)

t.test('cbatch\'s own settings never come from the job: CBATCH_* of qsub -v change nothing', async t => {
  const evil = join(corner, 'evil.yaml')
  asAttacker(`printf 'log: { file: ${canaries}/pwned.log }\\nqueues: {}\\n' > ${evil}`)
  const { job } = await runJob('#!/bin/sh\ntest -e /usr/local/bin/busybox-suid && echo in-container\n', {
    config: hostile,
    vars: { CBATCH_CONFIG: evil, CBATCH_DEBUG: '1', CBATCH_MOM_PRIV: corner, CBATCH_ENV_FD: '0' },
  })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(job.stdout.split('\n')[0], 'in-container', 'the queue of the real config, in its container')
  t.equal(job.stderr, '', 'no debug lines')
  t.equal(canaryState(), pristine, 'no log written where the owner said')
})

t.test('a TM task runs as the job\'s owner whatever USER qsub -v set, managed queue or not', async t => {
  for (const queue of ['batch', 'unmanaged']) {
    const { job } = await runJob('#!/bin/sh\nsleep 1\n', { config: hostile, queue, vars: { USER: 'root', LOGNAME: 'root' }, tasks: ['id -u', 'id -g'] })
    t.equal(job.exitStatus, 0, `${queue}: ${job.stderr}`)
    t.same(job.taskStatuses, [0, 0], `${queue}: the tasks ran`)
    t.equal(job.stdout.split('\n').filter(l => l && !l.startsWith('cbatch:')).sort().join('|'), [uid, hostId('-g')].sort().join('|'), `${queue}: as ${TEST_USER}`)
  }
})

t.test('the job\'s LD_PRELOAD and NODE_OPTIONS reach only the owner\'s processes', async t => {
  const marks = join(shared.path, 'preloaded')
  const lib = join(shared.path, 'mark.so')
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-x', 'c', '-o', lib, '-'], {
    input: `#include <fcntl.h>\n#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void mark(void) { char b[32]; int fd = open("${marks}", O_WRONLY | O_APPEND | O_CREAT, 0666); if (fd >= 0) { write(fd, b, snprintf(b, sizeof b, "%d\\n", (int)getuid())); close(fd); } }\n`,
  })
  t.equal(cc.status, 0, 'built a preload library')
  writeFileSync(join(shared.path, 'mark.js'), `require('fs').appendFileSync(${JSON.stringify(marks)}, 'node ' + process.getuid() + '\\n')\n`)
  for (const queue of ['batch', 'unmanaged']) {
    const { job } = await runJob('#!/bin/sh\ntrue\n', {
      config: hostile, queue, tasks: ['true'],
      vars: { LD_PRELOAD: lib, LD_LIBRARY_PATH: shared.path, NODE_OPTIONS: `--require=${shared.path}/mark.js` },
    })
    t.equal(job.exitStatus, 0, `${queue}: ${job.stderr}`)
  }
  const seen = readFileSync(marks, 'utf8').trim().split('\n')
  t.ok(seen.includes(uid), 'the owner\'s own processes on the host did load it, as they would without cbatch')
  t.same(seen.filter(line => line !== uid), [], 'no root process and no node of cbatch ever did')
})

t.test('a job of an unmanaged queue enters its working directory with its owner\'s rights only', async t => {
  const { job } = await runJob('#!/bin/sh\npwd\nls\n', { config: hostile, queue: 'unmanaged', vars: { PBS_O_INITDIR: '/root' } })
  t.equal(job.exitStatus, 125)
  t.equal(job.stdout, '', 'nothing ran')
  t.equal(job.stderr, 'cbatch: cannot enter the job\'s working directory /root (EACCES)\n')
})

t.test('host paths are judged by what they really are, as the owner reaches them', async t => {
  asAttacker(`cd ${corner} && ln -s /run to-run && ln -s /root to-root && ln -s ${victimHome}/private to-private && ln -s /var/spool/cbatch-pbs_home to-pbs-home && mkdir -p real/sub`)
  const cases: [string, JobOptionsLike, RegExp][] = [
    ['//run', { workDir: '//run' }, /^cbatch: PBS_O_WORKDIR \/\/run \(really \/run\) cannot be mounted .*\(it would expose \/run\/docker\.sock\)\n$/],
    ['/tmp/../run', { workDir: '/tmp/../run' }, /^cbatch: PBS_O_WORKDIR \/tmp\/\.\.\/run \(really \/run\) cannot be mounted .*docker\.sock/],
    ['a link to PBS_HOME', { workDir: `${corner}/to-pbs-home` }, /cannot be mounted .*\(it would expose \/var\/spool\/cbatch-pbs_home\)/],
    ['another user\'s closed directory', { workDir: `${victimHome}/private` }, /PBS_O_WORKDIR .* does not exist or cbatchtest may not enter it/],
    ['a link to /run below the allowed root', { mount: `${corner}/to-run` }, /^cbatch: mount .*to-run is not allowed in this queue/],
    ['a link to /root', { mount: `${corner}/to-root` }, /requested mount .*to-root does not exist or cbatchtest may not enter it/],
    ['a link into a closed home', { mount: `${corner}/to-private` }, /does not exist or cbatchtest may not enter it/],
    ['.. out of the allowed root', { mount: `${corner}/real/sub/../../../../../etc` }, /plain absolute path/],
    ['a path that does not exist', { mount: `${corner}/missing` }, /requested mount .*missing does not exist or cbatchtest may not enter it/],
  ]
  for (const [what, ask, message] of cases) {
    const script = `#!/bin/sh\n${ask.mount ? `#CBATCH mount=${ask.mount}\n` : ''}echo ran\n`
    const { job } = await runJob(script, { config: hostile, workDir: ask.workDir })
    t.ok(refused(job), `${what}: refused, never requeued`)
    t.match(job.stderr, message, what)
    t.notMatch(job.stdout, 'ran', what)
  }
  const { job } = await runJob(`#!/bin/sh\n#CBATCH mount=${corner}/real\nls -d ${corner}/real/sub && echo ran\n`, { config: hostile })
  t.equal(job.exitStatus, 0, 'a real directory of the owner\'s below the allowed root is fine')
  t.equal(canaryState(), pristine)
})

type JobOptionsLike = { workDir?: string; mount?: string }

t.test('a path swapped while the hooks run is never what gets mounted', async t => {
  // The racer swaps `race` between the owner's real directory and a link to /run, as fast
  // as it can, for the whole test. Every try must run with the real directory or be refused.
  asAttacker(`cd ${corner} && mkdir -p race && touch race/real-one`)
  // Real for a random 0-40 ms, a link for 3 ms: the swap lands anywhere in the prologue.
  const racer = spawn('setpriv', [`--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--init-groups', '--', '/bin/busybox', 'sh', '-c',
    `cd ${corner} && while :; do usleep $((RANDOM % 40000)); mv race race.d; ln -s /run race; usleep 3000; rm race; mv race.d race; done`],
  { stdio: 'ignore' })
  t.teardown(() => { racer.kill('SIGKILL') })
  const outcomes = { ran: 0, refused: 0 }
  for (let i = 0; i < 16; i++) {
    // The job may see its directory under either name, as the owner keeps renaming it.
    const { job } = await runJob(`#!/bin/sh\n#CBATCH mount=${corner}/race\nls -a ${corner}/race ${corner}/race.d 2>/dev/null\n`, { config: hostile })
    t.notMatch(job.stdout, /docker|containerd|\.pid/, `try ${i}: nothing of the host's /run`)
    if (!refused(job)) {
      outcomes.ran++
      t.equal(job.prologue.status, 0, `try ${i}: never requeued`)
      t.match(job.stdout, 'real-one', `try ${i}: the owner's directory`)
    } else {
      outcomes.refused++
      t.pass(`try ${i}: refused, not requeued`)
      // Refused by the prologue; or by the starter, when the engine, looking into the container
      // for the job's shell, met the swap (it mounts the binds again for that): closed either way.
      t.match(job.stderr, /^cbatch: (mount .* is not allowed|requested mount .*(does not exist|changed while)|the (Docker|Podman) engine refused|(Docker|Podman) engine error \(stat )/, `try ${i}`)
    }
  }
  t.comment(`ran ${outcomes.ran}, refused ${outcomes.refused}`)
  t.equal(canaryState(), pristine)
})

t.test('the engine never makes a bind source that is missing: not through a link of the owner\'s, not as root', async t => {
  // What a swap can leave at the moment the engine makes the container: a path whose last
  // part is gone, below a link of the owner's to a directory of root's.
  asAttacker(`cd ${corner} && ln -sfn ${canaries} to-canaries`)
  const engine = testEngine()
  const name = `cbatch-test-missing-source-${process.pid}`
  t.teardown(() => engine.remove(name).catch(() => undefined))
  await t.rejects(engine.run(testSpec({
    name, image: TEST_IMAGE, labels: {}, mounts: [{ source: `${corner}/to-canaries/made-by-the-engine`, target: '/x', readOnly: false }],
    rlimits: { nofile: { soft: 1024, hard: 1024 }, nproc: { soft: 4096, hard: 4096 } },
  })), { name: 'ContainerRefusedError' }, 'refused, as a container the engine will never make as asked')
  t.notOk(existsSync(join(canaries, 'made-by-the-engine')), 'nothing made in root\'s directory')
  t.equal(canaryState(), pristine)
})

t.test('a mount nested in the job\'s writable work dir, swapped while the hooks run, never shows another user\'s data', async t => {
  // The owner's work dir is mounted read-write; `nest/sub` inside it is asked for read-only.
  // The racer swaps `sub` for a link to another user's private directory and back: the
  // engine would follow the link at the source and at the target inside the container.
  writeFileSync(join(victimHome, 'private/secret'), 'victim-secret\n', { mode: 0o600 })
  asAttacker(`cd ${corner} && mkdir -p nest/sub && touch nest/sub/own-file`)
  const racer = spawn('setpriv', [`--reuid=${attacker.uid}`, `--regid=${attacker.gid}`, '--init-groups', '--', '/bin/busybox', 'sh', '-c',
    `cd ${corner}/nest && while :; do usleep $((RANDOM % 40000)); mv sub sub.d; ln -s ${victimHome}/private sub; usleep 3000; rm sub; mv sub.d sub; done`],
  { stdio: 'ignore' })
  t.teardown(() => { racer.kill('SIGKILL') })
  const outcomes = { ran: 0, refused: 0 }
  for (let i = 0; i < 12; i++) {
    const { job } = await runJob(`#!/bin/sh\n#CBATCH mount=${corner}/nest/sub:ro\ncat ${corner}/nest/sub/secret ${corner}/nest/sub.d/secret ${victimHome}/private/secret 2>/dev/null\nls ${corner}/nest/sub ${corner}/nest/sub.d 2>/dev/null\n`,
      { config: hostile, workDir: corner })
    t.notMatch(job.stdout, 'victim-secret', `try ${i}: never the other user's data`)
    if (refused(job)) outcomes.refused++
    else outcomes.ran++
  }
  t.comment(`ran ${outcomes.ran}, refused ${outcomes.refused}`)
  t.equal(canaryState(), pristine)
})

t.test('root never follows the job\'s links or trees in its scratch directory', async t => {
  const etc = sha('/etc/hostname')
  const { job } = await runJob(`#!/bin/sh
cd $CBATCH_SCRATCH
ln -s ${canary} canary-link
ln -s ${canaries} dir-link
mkdir closed && touch closed/f && chmod 000 closed
# Deeper than PATH_MAX: each round wraps the tree in a new parent, no long path needed.
mkdir deep; i=0; while [ $i -lt 150 ]; do mkdir wrap && mv deep wrap/${'d'.repeat(40)} && mv wrap deep || break; i=$((i + 1)); done
echo "depth=$i"
`, { config: hostile })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, 'depth=150\n', 'a tree far deeper than PATH_MAX')
  t.equal(canaryState(), pristine, 'nothing root-owned followed, chowned or removed')
  t.equal(sha('/etc/hostname'), etc)
  t.same(readdirSync(join(scratchRoot, 'hostile')), [], 'the scratch directory is gone')
  t.ok(accounted(job.jobId)?.usage, 'the job\'s accounting line is there')
})

t.test('a scratch base others may write to refuses the job, saying why', async t => {
  // A directory of the attacker's where root alone makes names otherwise; and the shared,
  // sticky one (the sticky /tmp above it is named first: root makes names there).
  const theirs = join(scratchRoot, 'theirs')
  mkdirSync(theirs)
  chownSync(theirs, attacker.uid, attacker.gid)
  for (const [base, reason] of [[`${theirs}/base`, /theirs is not owned by root/], [shared.path, /others may write to \/tmp \(sticky/]] as const) {
    const config = writeConfig(shared.path, `log: { file: ${rootOnly}/cbatch.log }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: ${base}, target: /scratch } }\n`)
    const { job } = await runJob('#!/bin/sh\necho ran\n', { config })
    t.ok(refused(job), base)
    t.match(job.stderr, reason)
    t.notMatch(job.stdout, 'ran')
  }
})

t.test('requests never lift limits: zero, huge and malformed sizes abort with a message', async t => {
  for (const resources of ['nodes=1:ppn=1,mem=0b', 'mem=0', 'vmem=0kb', 'pmem=0mb', 'mem=99999999999999999tb', 'nodes=1:ppn=99999999', 'ncpus=0', 'mem=5mb']) {
    const { job } = await runJob('#!/bin/sh\necho ran\n', { config: hostile, resources })
    t.ok(refused(job), resources)
    t.match(job.stderr, /^cbatch: .*(mem|ppn|ncpus|PBS_NUM_PPN)=?.* (is 0|too large|not a whole number|at least 6 MiB)/, resources)
    t.notMatch(job.stdout, 'ran')
  }
  const { job } = await runJob('#!/bin/sh\ncat /sys/fs/cgroup/memory/memory.limit_in_bytes\n', { config: hostile, resources: 'nodes=1:ppn=64,mem=64mb' })
  t.match(job.stdout, new RegExp(`^${64 * 1024 ** 2}\n`), 'a request beyond the node\'s CPUs gets them all, and its memory limit')
})

t.test('a job cannot make root loop over what it asks: 1400 mounts, or too many #CBATCH lines, are refused at once, saying why', async t => {
  // The finding: 59 KiB of mount= lines naming 1400 directories made 1400 bind mounts and a 23 s prologue.
  const dirs = Array.from({ length: 1400 }, (_, i) => `${allowed}/m${i}`)
  asAttacker(`cd ${allowed} && i=0; while [ $i -lt 1400 ]; do mkdir -p m$i; i=$((i + 1)); done`)
  const lines = Array.from({ length: 60 }, (_, l) => `#CBATCH ${dirs.slice(l * 24, l * 24 + 24).map(d => `mount=${d}`).join(' ')}`).join('\n')
  t.ok(lines.length > 50 * 1024, `${lines.length} bytes of #CBATCH lines`)
  let { job } = await runJob(`#!/bin/sh\n${lines}\necho ran\n`, { config })
  t.ok(refused(job), job.stderr)
  t.equal(job.stderr, 'cbatch: the job asks for more than 32 mounts (#CBATCH mount=); its queue allows at most 32\n')
  t.ok(job.prologue.ms < 5000, `the prologue refused it in ${Math.round(job.prologue.ms)} ms`)
  ;({ job } = await runJob(`#!/bin/sh\n${`#CBATCH image=${TEST_IMAGE}\n`.repeat(65)}echo ran\n`, { config }))
  t.ok(refused(job), job.stderr)
  t.equal(job.stderr, 'cbatch: the job script has more than 64 #CBATCH lines\n')
  t.notMatch(job.stdout, 'ran')
})

t.test('the job cannot stop its container\'s holder to dodge its accounting', async t => {
  const { job } = await runJob(`#!/bin/sh
kill -STOP 1 2>/dev/null; echo "stop=$?"
kill -9 1 2>/dev/null; echo "kill=$?"
kill -9 $(pgrep sleep) 2>/dev/null; echo "holder=$?"
kill -9 -1
`, { config: hostile })
  t.match(job.stdout, /stop=[1-9]\d*\nkill=[1-9]\d*\nholder=[1-9]\d*\n/, 'init and holder run as a uid the job cannot signal')
  t.ok(accounted(job.jobId)?.usage, 'its usage was read from the running container')
})

t.test('the container cannot fill the node\'s disk: read-only image, a bounded /tmp', async t => {
  const { job } = await runJob(`#!/bin/sh
touch /var/x 2>/dev/null; echo "rootfs=$?"
dd if=/dev/zero of=/tmp/big bs=1M count=16 2>/dev/null; echo "tmp=$?"
`, { config: hostile })
  t.match(job.stdout, /rootfs=[1-9]\d*\ntmp=[1-9]\d*\n/)
})

t.test('files root relies on are used only when root alone can change them', async t => {
  // A config the owner may write, an engine socket of theirs, a log link they planted.
  const theirs = join(corner, 'config.yaml')
  asAttacker(`printf 'queues:\\n  batch: { image: ${TEST_IMAGE}, pull: never }\\n' > ${theirs} && touch ${corner}/docker.sock`)
  let { job } = await runJob('#!/bin/sh\necho ran\n', { config: theirs })
  t.ok(refused(job), job.stderr)
  t.match(job.stderr, /^cbatch: invalid cbatch config .*: cbatch config .* is not safe: .* is not owned by root\n$/)
  const socket = writeConfig(shared.path, `engine: { socket: ${corner}/docker.sock }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  ;({ job } = await runJob('#!/bin/sh\necho ran\n', { config: socket }))
  t.ok(refused(job), job.stderr)
  t.match(job.stderr, /^cbatch: engine socket .* is not safe/)
  const planted = join(shared.path, 'planted.log')
  asAttacker(`ln -s ${canary} ${planted}`)
  const logged = writeConfig(shared.path, `log: { file: ${planted} }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  ;({ job } = await runJob('#!/bin/sh\necho ran\n', { config: logged }))
  t.equal(job.exitStatus, 0, 'the node log is best effort: the job runs')
  t.equal(canaryState(), pristine, 'and root never wrote through the link')
})
