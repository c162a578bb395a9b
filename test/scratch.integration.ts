// The job's scratch directory: the prologue makes the base and the job's directory in it;
// removing one (epilogue, or a prologue that failed) only removes, never makes or changes
// the base.
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeScratch, removeScratchDir } from '../lib/host/scratch.ts'
import { hostId } from './helpers/jobs.ts'

const owner = { name: 'cbatchtest', uid: Number(hostId('-u')), gid: Number(hostId('-g')), groups: [], home: '/', shell: '/bin/sh' }

t.test('removing a job\'s scratch directory never makes, nor chmods, the directory it is in', async t => {
  const dir = t.testdir({ open: {}, missing: {} })
  chmodSync(dir, 0o755)
  // A root directory with more than 0711 allows (as /etc is): left exactly as it is.
  const open = join(dir, 'open')
  chmodSync(open, 0o755)
  writeFileSync(join(open, 'keep'), 'x')
  await removeScratchDir(join(open, 'cbatch-1.srv-0123456789'))
  t.equal(statSync(open).mode & 0o7777, 0o755, 'not tightened to 0711')
  t.ok(existsSync(join(open, 'keep')))
  await removeScratchDir(join(dir, 'missing', 'absent', 'cbatch-1.srv-0123456789'))
  t.notOk(existsSync(join(dir, 'missing', 'absent')), 'a missing base is not made')
  for (const odd of ['relative/x', `${open}/../open/x`, `${open}/x/`, '/']) {
    await t.rejects(removeScratchDir(odd), { name: 'UnsafePathError' }, odd)
  }
})

t.test('the prologue makes the base 0711 and the job\'s directory; removing it leaves the base', async t => {
  const dir = t.testdir({})
  chmodSync(dir, 0o755)
  const base = join(dir, 'base')
  const scratch = await makeScratch(base, 'cbatch-2.srv-0123456789', owner)
  t.equal(statSync(base).mode & 0o7777, 0o711)
  t.equal(statSync(scratch).uid, owner.uid)
  mkdirSync(join(scratch, 'sub'))
  await removeScratchDir(scratch)
  t.notOk(existsSync(scratch))
  t.equal(statSync(base).mode & 0o7777, 0o711)
})
