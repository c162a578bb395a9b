import t from 'tap'
import { readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { collectOrphans } from '../lib/job/gc.ts'
import { FakeEngine, testSpec } from './helpers/fake-engine.ts'
import { pbsMom } from '../lib/torque/mom.ts'

t.test('orphans: labelled, old enough, and unknown to pbs_mom under any name it gives job files', async t => {
  const momPriv = t.testdir({ jobs: {} })
  for (const name of ['1.srv.JB', '2-3.srv.JB']) writeFileSync(join(momPriv, 'jobs', name), '')
  const engine = new FakeEngine()
  for (const job of ['1.srv', '2[3].srv', '9.srv']) await engine.run(testSpec({ name: `c-${job}`, image: 'i', labels: { 'cbatch.job': job, 'cbatch.mom': momPriv } }))
  await engine.run(testSpec({ name: 'someone-elses', image: 'i', labels: {} }))
  const now = new Date(Date.now() + 3600_000)
  t.same((await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 7200, now })).map(c => c.name), [], 'too young')
  t.same((await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 60, now, dryRun: true })).map(c => c.name), ['c-9.srv'])
  t.equal(engine.containers.size, 4, 'a dry run removes nothing')
  await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 60, now })
  t.same([...engine.containers.values()].map(c => c.name).sort(), ['c-1.srv', 'c-2[3].srv', 'someone-elses'])
})

t.test('cbatch\'s own files of jobs that are gone go too, once old enough', async t => {
  const momPriv = t.testdir({
    jobs: { '1.srv.JB': '' },
    'cbatch-accounts': { 'c-live': { passwd: '' }, 'c-gone': { passwd: '' } },
    'cbatch-refused': { '1.srv': 'reason', '9.srv': 'reason' },
  })
  const engine = new FakeEngine()
  await engine.run(testSpec({ name: 'c-live', image: 'i', labels: { 'cbatch.job': '1.srv', 'cbatch.mom': momPriv } }))
  await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 3600 })
  t.same(readdirSync(join(momPriv, 'cbatch-accounts')).sort(), ['c-gone', 'c-live'], 'too young: a prologue may be writing them')
  await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 0, now: new Date(Date.now() + 1000) })
  t.same(readdirSync(join(momPriv, 'cbatch-accounts')), ['c-live'])
  t.same(readdirSync(join(momPriv, 'cbatch-refused')), ['1.srv'], 'a refusal pbs_mom still has a job for stays')
})

t.test('gc judges only its own mom\'s containers: another mom\'s live job stays, unlabelled ones are reported and stay', async t => {
  const root = t.testdir({ mine: { mom_priv: { jobs: {} } }, other: { mom_priv: { jobs: { '5.srv.JB': '' } } } })
  const momPriv = join(root, 'mine/mom_priv')
  const otherMom = join(root, 'other/mom_priv')
  symlinkSync(join(root, 'mine'), join(root, 'linked'))
  const engine = new FakeEngine()
  // Another mom's job, alive there, unknown to this one: its container is not this mom's orphan.
  await engine.run(testSpec({ name: 'c-other', image: 'i', labels: { 'cbatch.job': '5.srv', 'cbatch.mom': otherMom } }))
  await engine.run(testSpec({ name: 'c-legacy', image: 'i', labels: { 'cbatch.job': '6.srv' } }))
  // This mom's own orphan, labelled through another path to the same mom_priv.
  await engine.run(testSpec({ name: 'c-mine', image: 'i', labels: { 'cbatch.job': '7.srv', 'cbatch.mom': join(root, 'linked/mom_priv') } }))
  const unlabelled: string[] = []
  const removed = await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 0, now: new Date(Date.now() + 1000), onUnlabelled: c => unlabelled.push(c.name) })
  t.same(removed.map(c => c.name), ['c-mine'])
  t.same(unlabelled, ['c-legacy'], 'a container no label ties to a mom is reported')
  t.same([...engine.containers.values()].map(c => c.name).sort(), ['c-legacy', 'c-other'])
  // From the other mom's side, its job is known: nothing of either is removed.
  t.same(await collectOrphans(engine, { batch: pbsMom(otherMom), graceSeconds: 0, now: new Date(Date.now() + 1000) }), [])
  t.equal(engine.containers.size, 2)
})

t.test('a live job in the middle of a job_save is no orphan: its .JC counts, and a .JB back by the second look too', async t => {
  const momPriv = t.testdir({ jobs: { '1.srv.JC': '' }, 'cbatch-refused': { '1.srv': 'reason', '3.srv': 'reason' } })
  const engine = new FakeEngine()
  for (const job of ['1.srv', '2.srv']) await engine.run(testSpec({ name: `c-${job}`, image: 'i', labels: { 'cbatch.job': job, 'cbatch.mom': momPriv } }))
  // 2.srv's .JB is missing at gc's first look (job_save's unlink) and back 300 ms later (its link).
  setTimeout(() => writeFileSync(join(momPriv, 'jobs', '2.srv.JB'), ''), 300)
  const began = performance.now()
  const removed = await collectOrphans(engine, { batch: pbsMom(momPriv), graceSeconds: 0, now: new Date(Date.now() + 1000) })
  t.same(removed, [])
  t.ok(performance.now() - began >= 1000, 'a job missing at the first look is looked for again a second later')
  t.same([...engine.containers.values()].map(c => c.name).sort(), ['c-1.srv', 'c-2.srv'])
  t.same(readdirSync(join(momPriv, 'cbatch-refused')), ['1.srv'], 'a refusal whose job has only a .JC stays; one of a job gone twice goes')
})
