// Real jobs on a real TORQUE (scripts/torque/tier.sh: nodes vm and vm2, cbatch installed on
// both by install.sh): what pbs_mom decides, checked where the emulator could only follow a
// contract. Each test names the fact of docs/torque-contract.md it rests on.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { IN_CONTAINER } from '../helpers/engine.ts'
import { containersOf, eventually, finished, idOf, MOMS, OTHER, OWNER, running, submit, torqueAnswers } from './torque.ts'

if (!torqueAnswers()) {
  t.comment('no TORQUE answers on this host: the real-TORQUE tier is skipped (scripts/torque/build.sh, then tier.sh)')
  process.exit(0)
}
t.setTimeout(20 * 60 * 1000)

const capable = (BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n

t.test('a job runs in its container as its owner; names resolve though the prologue runs under umask 0077', async t => {
  const job = submit(`#!/bin/sh\nid -un; id -gn; ${IN_CONTAINER} && echo in-container; ls -l /etc/passwd | cut -c1-10; umask\n`,
    { resources: 'nodes=vm:ppn=1' })
  const done = await finished(job)
  t.equal(done.exitStatus, 0, done.stderr)
  t.equal(done.stdout.split('\n').slice(0, 5).join(' '), `${OWNER} ${OWNER} in-container -rw-r--r-- 0077`)
})

t.test('every node spec form runs, and each node\'s container has that node\'s own share of CPUs', async t => {
  // The job shell lists its node file; each task says its node's CPU quota.
  const script = `#!/bin/sh
uniq -c "$PBS_NODEFILE" | awk '{print "slots " $2 " " $1}'
/usr/local/bin/pbsdsh -u sh -c 'echo "node=$PBS_NODENUM cpus=$(($(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) / $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)))"'
`
  for (const resources of ['nodes=vm:ppn=1', 'nodes=1:ppn=2', 'nodes=2:ppn=1', 'nodes=vm:ppn=1+vm2:ppn=1', 'nodes=vm+1:ppn=2', 'nodes=1:ppn=2+1:ppn=1', 'nodes=vm2:ppn=2+vm:ppn=1']) {
    const done = await finished(submit(script, { resources }))
    t.equal(done.exitStatus, 0, `${resources}: ${done.stderr}`)
    // Node k is the k-th host of the node file: its slots are its CPUs.
    const slots = [...done.stdout.matchAll(/^slots (\S+) (\d+)$/gm)].map(m => Number(m[2]))
    t.ok(slots.length >= 1, `${resources}: node file listed`)
    const tasks = done.stdout.split('\n').filter(l => l.startsWith('node=')).sort()
    t.same(tasks, slots.map((n, i) => `node=${i} cpus=${n}`), `${resources}: ${done.stdout}`)
  }
})

t.test('a TM task cannot claim another user\'s job, whatever variables its spawner passes', async t => {
  const secretDir = `/home/${OTHER}/cbatch-tier`
  execFileSync('install', ['-d', '-o', OTHER, '-g', OTHER, '-m', '0700', secretDir])
  writeFileSync(`${secretDir}/secret`, 'victim-secret\n', { mode: 0o600 })
  chownSync(`${secretDir}/secret`, idOf(OTHER), idOf(OTHER, '-g'))
  for (const victimQueue of ['batch', 'unmanaged']) {
    const victim = submit('#!/bin/sh\nsleep 60\n', { user: OTHER, queue: victimQueue, resources: 'nodes=vm:ppn=1' })
    await running(victim)
    // The attacker's job, in a container and natively, claims the victim's job for a task.
    for (const attackerQueue of ['batch', 'unmanaged']) {
      const forged = `PBS_JOBID=${victim.jobId},PBS_QUEUE=${victimQueue},HOME=/home/${OTHER},USER=${OTHER},PBS_TASKNUM=1`
      const attacker = submit(`#!/bin/sh\n/usr/local/bin/pbsdsh -e ${forged} -n 0 sh -c 'echo "task as $(id -un)"; cat ${secretDir}/secret; touch /home/${OTHER}/pwned'\necho spawned\n`,
        { queue: attackerQueue, resources: 'nodes=vm:ppn=1' })
      const done = await finished(attacker)
      const what = `victim in ${victimQueue}, attacker in ${attackerQueue}`
      t.notMatch(done.stdout, /task as|victim-secret/, `${what}: the task never ran`)
      t.match(done.stderr, `cbatch: this process is not one of job ${victim.jobId}'s: its PBS_JOBCOOKIE is not the job's`, what)
      t.notOk(spawnSync('test', ['-e', `/home/${OTHER}/pwned`]).status === 0, `${what}: nothing made as the victim`)
    }
    spawnSync('qdel', [victim.jobId])
    await finished(victim)
  }
})

t.test('qsub -v CBATCH_IMAGE cannot choose the image; the job is told so and #CBATCH image= works', async t => {
  const byVariable = await finished(submit('#!/bin/sh\necho ran\n', { vars: 'CBATCH_IMAGE=cbatch-test/busybox:latest', resources: 'nodes=vm:ppn=1' }))
  t.equal(byVariable.exitStatus, 125)
  t.notMatch(byVariable.stdout, 'ran')
  // Podman names images it loaded localhost/<name>.
  t.match(byVariable.stderr, /with CBATCH_IMAGE, which cannot choose the image; its container runs (localhost\/)?cbatch-test\/torque:latest\. Ask with a #CBATCH image= line/)
  const byLine = await finished(submit('#!/bin/sh\n#CBATCH image=cbatch-test/busybox:latest\ntest -x /usr/local/bin/pbsdsh || echo "plain busybox"\n', { resources: 'nodes=vm:ppn=1' }))
  t.equal(byLine.exitStatus, 0, byLine.stderr)
  t.match(byLine.stdout, 'plain busybox')
})

t.test('a job\'s vmem that root cannot lift is named to the owner; where it can, the job runs', async t => {
  const done = await finished(submit('#!/bin/sh\necho ran\n', { resources: 'nodes=vm:ppn=1,vmem=512mb' }))
  if (capable) {
    t.equal(done.exitStatus, 0, done.stderr)
  } else {
    t.equal(done.exitStatus, 125)
    t.match(done.stderr, /^cbatch: the job's vmem \(512 MiB\) also limits cbatch's job starter, which needs \d+ MiB, and root on this node cannot lift it \(it lacks CAP_SYS_RESOURCE\)/)
  }
})

t.test('tasks run in their node\'s container as the owner, whatever USER the job sets', async t => {
  const job = submit(`#!/bin/sh\n/usr/local/bin/pbsdsh -u sh -c 'echo "node=$PBS_NODENUM uid=$(id -u) container=$(${IN_CONTAINER} && echo yes)"'\n`,
    { resources: 'nodes=vm:ppn=1+vm2:ppn=1', vars: 'USER=root' })
  const done = await finished(job)
  t.equal(done.exitStatus, 0, done.stderr)
  t.same(done.stdout.split('\n').filter(l => l.startsWith('node=')).sort(), [0, 1].map(n => `node=${n} uid=${idOf(OWNER)} container=yes`))
  t.ok(await eventually(() => MOMS.every(m => !containersOf(job.jobId, m.socket).length), 10_000), 'nothing left on either node')
})

t.test('a sister\'s container lives as long as its job, through pbs_mom\'s rewrites of the job file', async t => {
  // pbs_mom's job_save replaces a .JB non-atomically (docs/torque-contract.md) on every state
  // change and task; the sister's guard must never take such a moment for the job's end.
  // Each task names the cgroup it runs in: one and the same container all along.
  const job = submit(`#!/bin/sh
i=0
while [ $i -lt 8 ]; do
  /usr/local/bin/pbsdsh -n 1 sh -c '${IN_CONTAINER} && echo "sister alive $PBS_NODENUM $(grep -m1 cpuacct /proc/self/cgroup)"'
  i=$((i + 1)); sleep 5
done
`, { resources: 'nodes=vm:ppn=1+vm2:ppn=1' })
  const done = await finished(job)
  t.equal(done.exitStatus, 0, done.stderr)
  const alive = done.stdout.split('\n').filter(l => l.startsWith('sister alive 1 '))
  t.equal(alive.length, 8, `every task found the sister's container: ${done.stdout}`)
  t.equal(new Set(alive).size, 1, `in one and the same container: ${alive.join(' | ')}`)
  t.match(alive[0] ?? '', /[0-9a-f]{64}/, 'a container\'s cgroup')
})

t.test('a mother superior whose prologue fails leaves no container on its sister, through requeues and qdel', async t => {
  // Queue pullfail: vm cannot pull its image (its prologue requeues, again and again); vm2 has it.
  const job = submit('#!/bin/sh\necho ran\n', { queue: 'pullfail', resources: 'nodes=vm:ppn=1+vm2:ppn=1' })
  const sister = MOMS[1].socket
  let most = 0
  const until = Date.now() + 60_000
  while (Date.now() < until) {
    most = Math.max(most, containersOf(job.jobId, sister).length)
    await new Promise(r => setTimeout(r, 1000))
  }
  t.ok(most <= 1, `at most one container of the job on the sister at any time (saw ${most})`)
  spawnSync('qdel', [job.jobId])
  t.ok(await eventually(() => containersOf(job.jobId, sister).length === 0, 30_000), 'none left after qdel')
  t.ok(await eventually(() => containersOf(job.jobId, MOMS[0].socket).length === 0, 5_000), 'none on the mother superior either')
  // One job looping is one job (its owner's alone cannot take a node down); two more, of two
  // owners, make 3 jobs of 2 owners: the node check takes the mother superior out of scheduling.
  const more = [OWNER, OTHER].map(user => submit('#!/bin/sh\necho ran\n', { user, queue: 'pullfail', resources: 'nodes=vm:ppn=1' }))
  t.teardown(() => { spawnSync('qdel', more.map(j => j.jobId)) })
  const down = await eventually(() => /message=ERROR cbatch: the prologue requeued \d+ jobs of \d+ owners within 5 min for a fault of this node; see this node's cbatch log/.test(nodeState('vm')), 90_000)
  t.ok(down, `vm is down, saying why: ${nodeState('vm')}`)
  t.match(nodeState('vm'), /state = down/)
  t.notMatch(nodeState('vm'), /message=ERROR[^,\n]*(pull|\d+\.\w)/, 'naming no job and no failure')
  spawnSync('qdel', more.map(j => j.jobId))
  // The admin fixed the node: once the streak is gone, the check passes and the node is back.
  rmSync(`${MOMS[0].pbsHome}/mom_priv/cbatch-requeues.json`, { force: true })
  t.ok(await eventually(() => /state = free/.test(nodeState('vm')), 90_000), 'vm is free again')
})

const nodeState = (node: string) => spawnSync('pbsnodes', [node], { encoding: 'utf8' }).stdout


