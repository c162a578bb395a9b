// A job's TM cookie is what proves a task is the job's (lib/torque/jobfile.ts readClaimedJob):
// on a real TORQUE no other user may learn it, not even after provoking pbs_mom into logging
// it (a TM request with a wrong cookie makes pbs_mom log the job's real one).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { readJobRecord } from '../../lib/torque/jobfile.ts'
import { asUser, finished, MOMS, OTHER, OWNER, running, submit, torqueAnswers } from './torque.ts'

if (!torqueAnswers()) {
  t.comment('no TORQUE answers on this host: the real-TORQUE tier is skipped (scripts/torque/build.sh, then tier.sh)')
  process.exit(0)
}
t.setTimeout(10 * 60 * 1000)

t.test('no other user can read a job\'s cookie, even one pbs_mom logged after a forged TM request', async t => {
  for (const { pbsHome } of MOMS) {
    const mode = statSync(join(pbsHome, 'mom_logs')).mode & 0o777
    t.equal(mode & 0o077, 0, `${pbsHome}/mom_logs is root's alone (mode ${mode.toString(8)})`)
  }
  const victim = submit('#!/bin/sh\nsleep 60\n', { user: OTHER, resources: 'nodes=vm:ppn=1+vm2:ppn=1' })
  await running(victim)
  const cookie = readJobRecord(join(MOMS[0].pbsHome, 'mom_priv'), victim.jobId).cookie
  t.ok(cookie.length >= 16, 'the victim\'s cookie is read from its job file')

  // The attacker's job sends TM requests for the victim's job with a cookie of its own,
  // natively and from a container, to both moms.
  for (const queue of ['unmanaged', 'batch']) {
    const attack = submit(`#!/bin/sh
for node in 0 1; do
  PBS_JOBID=${victim.jobId} PBS_JOBCOOKIE=0123456789ABCDEF0123456789ABCDEF /usr/local/bin/pbsdsh -n $node true
done
echo sent
`, { queue, resources: 'nodes=vm:ppn=1' })
    const done = await finished(attack)
    t.match(done.stdout, /sent/, `${queue}: the forged TM requests were sent`)
  }

  // Everything the attacker can read under both PBS_HOMEs, and every process's command line;
  // the cookie goes to grep in a file of the attacker's, never on a command line itself.
  const homes = MOMS.map(m => m.pbsHome).join(' ')
  const seen = asUser(OWNER, ['sh', '-c', `pattern=$(mktemp); cat >"$pattern"
find ${homes} -type f -readable 2>/dev/null | xargs -r grep -l -a -F -f "$pattern" 2>/dev/null
cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c -a -F -f "$pattern"; rm -f "$pattern"`], `${cookie}\n`)
  const lines = seen.stdout.trim().split('\n')
  const [files, inCommandLines] = [lines.slice(0, -1), lines.at(-1)]
  t.same(files, [], 'no file the attacker can read holds the cookie')
  t.equal(inCommandLines, '0', 'no command line shows the cookie')
  // The check can fail: as root the cookie is found in pbs_mom's job file, and in the log
  // line the forged request provoked.
  const asRoot = spawnSync('grep', ['-r', '-l', '-a', '-F', '-e', cookie, join(MOMS[0].pbsHome, 'mom_priv', 'jobs'), join(MOMS[0].pbsHome, 'mom_logs')], { encoding: 'utf8' })
  t.match(asRoot.stdout, /\.JB/, 'root finds the cookie where pbs_mom keeps it')
  t.match(asRoot.stdout, /mom_logs/, 'pbs_mom logged the real cookie when the forged request came')

  spawnSync('qdel', [victim.jobId])
  await finished(victim)
})
