import t from 'tap'
import { spawn } from 'node:child_process'
import { linkSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  JOB_FILE_RETRY_MS, JOB_GONE_RECHECK_MS, jobFilePath, jobFilePrefix, jobFilesGone, jobGone, jobKnown, parseJobRecord, readClaimedJob, readJobRecord,
} from '../lib/torque/jobfile.ts'

// As TORQUE 6.1's pbs_mom writes it (src/test/pam_pbssimpleauth/job.xml, trimmed).
const XML = `<?xml version="1.0"?>
<job>
  <version>131842</version>
  <jobid>13.head</jobid>
  <fileprefix>13.head</fileprefix>
  <queue></queue>
  <record_type>3</record_type>
  <execution_uid>500</execution_uid>
  <execution_gid>501</execution_gid>
  <attributes>
    <Job_Owner flags="1">adaptive@head</Job_Owner>
    <queue flags="1">batch</queue>
    <Resource_List>
      <neednodes flags="3">1</neednodes>
      <nodes flags="3">1:ppn=2+1:ppn=1</nodes>
    </Resource_List>
    <exec_host flags="1">vm2/0+vm/0-1</exec_host>
    <Variable_List flags="1">PBS_O_QUEUE=batch
USER=root
</Variable_List>
    <euser flags="1">adaptive</euser>
    <egroup flags="5">staff</egroup>
    <cookie flags="4101">4AE19A3C2F7F50B67F8FD2F7E8C1C9B1</cookie>
  </attributes>
</job>
`

t.test('the owner and queue are what pbs_mom wrote, not the job\'s variables', async t => {
  t.same(parseJobRecord(XML, '13.head'), {
    jobId: '13.head', queue: 'batch', user: 'adaptive', uid: 500, group: 'staff', gid: 501, cookie: '4AE19A3C2F7F50B67F8FD2F7E8C1C9B1',
    resources: 'neednodes=1,nodes=1:ppn=2+1:ppn=1', execHost: 'vm2/0+vm/0-1',
  })
})

t.test('a job file that is not this job\'s, or not TORQUE 6\'s, is refused', async t => {
  t.throws(() => parseJobRecord(XML, '14.head'), { name: 'JobFileError', message: /is the job file of 13.head, not of 14.head/ })
  t.throws(() => parseJobRecord('PBSJOB\0binary', '13.head'), { name: 'JobFileError', message: /no jobid: is this TORQUE 6/ })
  t.throws(() => parseJobRecord(XML.replace('<execution_uid>500', '<execution_uid>-1'), '13.head'), { message: /execution_uid "-1" is not a number/ })
  t.throws(() => parseJobRecord(XML.replace(/<euser[^\n]*\n/, ''), '13.head'), { message: /no euser/ })
  t.throws(() => parseJobRecord(XML.replace(/<cookie[^\n]*\n/, ''), '13.head'), { message: /no cookie/ })
})

t.test('files are found as pbs_mom names them: array sub-jobs, multi-mom ports', async t => {
  t.equal(jobFilePrefix('12[3].head'), '12-3.head')
  t.equal(jobFilePrefix('12.head'), '12.head')
  const dir = t.testdir({ jobs: { '12-3.head.JB': '', '7.head30003.JB': '', '8.head.JB': '', '8.head1.JB': '' } })
  t.equal(jobFilePath(dir, '12[3].head'), join(dir, 'jobs/12-3.head.JB'))
  t.equal(jobFilePath(dir, '7.head'), join(dir, 'jobs/7.head30003.JB'))
  t.equal(jobFilePath(dir, '8.head'), join(dir, 'jobs/8.head.JB'), 'an exact name first')
  t.equal(jobFilePath(dir, '9.head'), undefined)
  t.equal(jobFilePath(join(dir, 'nowhere'), '9.head'), undefined)
})

t.test('the job file is read only from where root alone can write', async t => {
  const dir = t.testdir({ jobs: {} })
  writeFileSync(join(dir, 'jobs/13.head.JB'), XML)
  t.equal(readJobRecord(dir, '13.head').user, 'adaptive')
  t.throws(() => readJobRecord(dir, '14.head'), { name: 'JobFileError', message: /not known to this pbs_mom/ })
})

t.test('a process belongs to a job only with that job\'s cookie, whatever its PBS_JOBID says', async t => {
  const dir = t.testdir({ jobs: {} })
  writeFileSync(join(dir, 'jobs/13.head.JB'), XML)
  t.equal(readClaimedJob(dir, '13.head', '4AE19A3C2F7F50B67F8FD2F7E8C1C9B1').user, 'adaptive')
  // An attacker's task names the victim's job (pbsdsh -e PBS_JOBID=13.head) with its own
  // cookie, a guess, a prefix or none.
  for (const cookie of ['0123456789ABCDEF0123456789ABCDEF', '4AE19A3C2F7F50B67F8FD2F7E8C1C9B', '4AE19A3C2F7F50B67F8FD2F7E8C1C9B1 ', '', undefined]) {
    t.throws(() => readClaimedJob(dir, '13.head', cookie), { name: 'IdentityError', message: /not one of job 13.head's: its PBS_JOBCOOKIE/ }, String(cookie))
  }
})

// pbs_mom's job_save: writes <prefix>.JC, unlinks <prefix>.JB, links .JC to .JB, unlinks .JC.
// Each step as a separate moment, as another process could see them.
function jobSave(dir: string, name: string, xml = XML): { jb: string; jc: string; steps: (() => void)[] } {
  const jb = join(dir, 'jobs', `${name}.JB`)
  const jc = join(dir, 'jobs', `${name}.JC`)
  return { jb, jc, steps: [() => writeFileSync(jc, xml), () => rmSync(jb, { force: true }), () => linkSync(jc, jb), () => rmSync(jc)] }
}

t.test('a job is known by its .JB or the .JC of a job_save under way, under either name pbs_mom gives', async t => {
  const dir = t.testdir({ jobs: { '5.head.JC': '', '6.head30003.JC': '', '7.head.JB': '', '8.head.SC': '' } })
  t.ok(jobKnown(dir, '5.head'), 'a .JC alone: the .JB is being replaced')
  t.ok(jobKnown(dir, '6.head'), 'a multi-mom .JC')
  t.ok(jobKnown(dir, '7.head'))
  t.notOk(jobKnown(dir, '8.head'), 'a script is no job file')
  t.notOk(jobKnown(join(dir, 'nowhere'), '5.head'))
  t.equal(jobFilePath(dir, '5.head'), undefined, 'the .JB itself is still only the .JB')
})

t.test('through every step of job_save, a live job is known on every look and never gone', async t => {
  const dir = t.testdir({ jobs: {} })
  writeFileSync(join(dir, 'jobs/13.head.JB'), XML)
  const { steps } = jobSave(dir, '13.head')
  for (const step of steps) {
    step()
    t.ok(jobKnown(dir, '13.head'))
  }
  // job_save over and over for longer than a recheck, .JB missing for part of each round.
  let stop = false
  const saving = (async () => {
    while (!stop) {
      for (const step of jobSave(dir, '13.head').steps) {
        step()
        await new Promise(r => setTimeout(r, 15))
      }
    }
  })()
  const verdicts = await Promise.all([0, 100, 300, 700].map(async delay => {
    await new Promise(r => setTimeout(r, delay))
    return jobGone(dir, '13.head')
  }))
  stop = true
  await saving
  t.same(verdicts, [false, false, false, false])
})

t.test('a job is gone only when neither file is there on two looks at least a second apart', async t => {
  const dir = t.testdir({ jobs: {} })
  let began = performance.now()
  t.equal(await jobGone(dir, '13.head'), true)
  t.ok(performance.now() - began >= JOB_GONE_RECHECK_MS, 'the second look came at least a second after the first')
  // Missing at the first look, back before the second (the moment between unlink and link).
  setTimeout(() => writeFileSync(join(dir, 'jobs/13.head.JB'), XML), 300)
  began = performance.now()
  t.equal(await jobGone(dir, '13.head'), false)
  t.equal(await jobGone(dir, '13.head'), false, 'there: no wait')
  t.equal(await jobFilesGone(dir, '13.head'), false, 'by file prefix too')
})

t.test('the starter looks again for a job file missing for a moment, and reads a job_save\'s copy', async t => {
  const dir = t.testdir({ jobs: {} })
  const { steps } = jobSave(dir, '13.head')
  // Between unlink and link: only the complete copy is there.
  steps[0]()
  let began = performance.now()
  t.equal(readClaimedJob(dir, '13.head', '4AE19A3C2F7F50B67F8FD2F7E8C1C9B1').user, 'adaptive', 'the .JC read in place of the missing .JB')
  t.ok(performance.now() - began >= 2 * JOB_FILE_RETRY_MS, 'after looking twice more for the .JB')
  // The .JB comes back while the starter waits (a child process links it 50 ms on).
  rmSync(join(dir, 'jobs/13.head.JC'))
  const jb = join(dir, 'jobs/13.head.JB')
  const later = spawn('/bin/busybox', ['sh', '-c', `sleep 0.05; printf '%s' "$1" >"$2.tmp" && mv "$2.tmp" "$2"`, 'x', XML, jb], { stdio: 'ignore' })
  t.equal(readJobRecord(dir, '13.head').user, 'adaptive', 'found on the second look')
  await new Promise(r => later.on('exit', r))
  // No file at all: refused after one more look, without waiting for a copy.
  rmSync(jb)
  began = performance.now()
  t.throws(() => readJobRecord(dir, '13.head'), { name: 'JobFileError', message: /not known to this pbs_mom/ })
  const took = performance.now() - began
  t.ok(took >= JOB_FILE_RETRY_MS && took < 2 * JOB_FILE_RETRY_MS + 150, `one retry only (${Math.round(took)} ms)`)
  // A copy still being written (the job's first save) is not read as the job.
  writeFileSync(join(dir, 'jobs/13.head.JC'), XML.slice(0, 200))
  t.throws(() => readJobRecord(dir, '13.head'), { name: 'JobFileError', message: /not known to this pbs_mom/ })
  // A copy of another job is not this job.
  writeFileSync(join(dir, 'jobs/13.head.JC'), XML.replace('<jobid>13.head', '<jobid>14.head'))
  t.throws(() => readJobRecord(dir, '13.head'), { name: 'JobFileError' })
})
