import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { collectOrphans } from '../lib/job/gc.ts'
import { FakeEngine } from './helpers/fake-engine.ts'

t.test('orphans: labelled, old enough, and unknown to pbs_mom under any name it gives job files', async t => {
  const momPriv = t.testdir({ jobs: {} })
  for (const name of ['1.srv.JB', '2-3.srv.JB']) writeFileSync(join(momPriv, 'jobs', name), '')
  const engine = new FakeEngine()
  for (const job of ['1.srv', '2[3].srv', '9.srv']) await engine.run({ name: `c-${job}`, Image: 'i', Labels: { 'cbatch.job': job } })
  await engine.run({ name: 'someone-elses', Image: 'i', Labels: {} })
  const now = new Date(Date.now() + 3600_000)
  t.same((await collectOrphans(engine, { momPriv, graceSeconds: 7200, now })).map(c => c.name), [], 'too young')
  t.same((await collectOrphans(engine, { momPriv, graceSeconds: 60, now, dryRun: true })).map(c => c.name), ['c-9.srv'])
  t.equal(engine.containers.size, 4, 'a dry run removes nothing')
  await collectOrphans(engine, { momPriv, graceSeconds: 60, now })
  t.same([...engine.containers.values()].map(c => c.name).sort(), ['c-1.srv', 'c-2[3].srv', 'someone-elses'])
})
