import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { jobFilePath, jobFilePrefix, parseJobRecord, readClaimedJob, readJobRecord } from '../lib/torque/jobfile.ts'

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
  t.throws(() => parseJobRecord(XML, '14.head'), { name: 'UsageError', message: /is the job file of 13.head, not of 14.head/ })
  t.throws(() => parseJobRecord('PBSJOB\0binary', '13.head'), { name: 'UsageError', message: /no jobid: is this TORQUE 6/ })
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
  t.throws(() => readJobRecord(dir, '14.head'), { name: 'UsageError', message: /not known to this pbs_mom/ })
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
