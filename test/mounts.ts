// Host paths of a job: resolved as the owner, judged on their real paths, checked after
// the engine mounted them. Real directories, the real test user.
import t, { type Test } from 'tap'
import { chmodSync, chownSync, mkdirSync, renameSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { lookupUser } from '../lib/host/identity.ts'
import { planMounts, verifyMounts, type MountRequest } from '../lib/host/mounts.ts'
import { TEST_USER } from './helpers/jobs.ts'

const owner = await lookupUser(TEST_USER)
const noPolicy = { volumes: [], userMounts: [] }

function tree(t: Test): string {
  const dir = t.testdir({ ro: { inside: {} }, rw: { project: {} }, around: { ref: {} }, closed: { secret: {} } })
  chmodSync(dir, 0o755)
  for (const d of ['ro', 'ro/inside', 'rw', 'rw/project', 'around', 'around/ref']) chownSync(join(dir, d), owner.uid, owner.gid)
  chmodSync(join(dir, 'closed'), 0o700)
  return dir
}

const plan = (over: Partial<MountRequest>) => planMounts({ owner: { ...owner, home: '/nonexistent-home' }, policy: noPolicy, requested: [], ...over })

t.test('a job directory inside a read-only volume stays read-only; one holding it is refused', async t => {
  const dir = tree(t)
  const policy = { volumes: [{ source: join(dir, 'ro'), target: '/ref', readOnly: true }, { source: join(dir, 'around/ref'), readOnly: true }], userMounts: [{ source: dir }] }
  const inside = await plan({ policy, workDir: join(dir, 'ro/inside') })
  t.match(inside.at(-1), { source: join(dir, 'ro/inside'), target: join(dir, 'ro/inside'), readOnly: true, what: 'PBS_O_WORKDIR' })
  await t.rejects(plan({ policy, requested: [{ path: join(dir, 'around'), readOnly: false }] }),
    { name: 'PolicyError', message: `requested mount ${join(dir, 'around')} cannot be mounted: it holds the read-only volume ${join(dir, 'around/ref')}` })
  const roots = { volumes: [], userMounts: [{ source: join(dir, 'ro'), readOnly: true }, { source: join(dir, 'rw') }] }
  await t.rejects(plan({ policy: roots, workDir: dir }), { message: /it holds the read-only mount root/ }, 'nor a root the site offers read-only')
  const mine = await plan({ policy: roots, requested: [{ path: join(dir, 'rw/project'), readOnly: true }], workDir: join(dir, 'rw') })
  t.same(mine.map(m => [m.source, m.readOnly]), [[join(dir, 'rw/project'), true], [join(dir, 'rw'), false]], 'what the job itself asked read-only is its own choice')
  const readOnly = await plan({ policy, requested: [{ path: join(dir, 'around'), readOnly: true }] })
  t.equal(readOnly.at(-1)?.readOnly, true, 'read-only around it is fine')
})

t.test('a directory already visible where it is is not mounted again', async t => {
  const dir = tree(t)
  const policy = { volumes: [{ source: join(dir, 'rw') }], userMounts: [] }
  const mounts = await plan({ policy, workDir: join(dir, 'rw/project') })
  t.same(mounts.map(m => m.source), [join(dir, 'rw')])
})

t.test('the owner\'s reach decides: a closed directory is refused even where root could go', async t => {
  const dir = tree(t)
  await t.rejects(plan({ workDir: join(dir, 'closed/secret') }), { name: 'PolicyError', message: /does not exist or cbatchtest may not enter it/ })
  symlinkSync(join(dir, 'closed/secret'), join(dir, 'rw/link'))
  await t.rejects(plan({ workDir: join(dir, 'rw/link') }), { message: /may not enter it/ })
  t.same(await plan({ workDir: join(dir, 'missing') }), [], 'a PBS_O_WORKDIR this node does not have is left out')
})

t.test('verifyMounts: the container must show the very directory judged, still at its real path', async t => {
  const dir = tree(t)
  const mounts = await plan({ workDir: join(dir, 'rw/project') })
  // A "container" whose root is the host's: each target shows what is on the host.
  const proc = join(dir, 'proc')
  mkdirSync(join(proc, '42'), { recursive: true })
  symlinkSync('/', join(proc, '42/root'))
  verifyMounts(42, mounts, proc)
  t.pass('the judged directory is what the container shows')
  renameSync(join(dir, 'rw/project'), join(dir, 'rw/elsewhere'))
  mkdirSync(join(dir, 'rw/project'))
  t.throws(() => verifyMounts(42, mounts, proc), { name: 'UnsafePathError', message: /changed while the job's container was made/ })
  renameSync(join(dir, 'rw/project'), join(dir, 'rw/other'))
  symlinkSync(join(dir, 'rw/elsewhere'), join(dir, 'rw/project'))
  t.throws(() => verifyMounts(42, mounts, proc), { name: 'UnsafePathError' }, 'the same directory, but through a link now')
})
