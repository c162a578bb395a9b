// Host paths of a job: resolved as the owner, judged on their real paths, checked after
// the engine mounted them. Real directories, the real test user.
import t, { type Test } from 'tap'
import { chmodSync, chownSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { lookupUser } from '../lib/host/identity.ts'
import { parseMountInfo, planMounts, proveBinds, shownInContainer, type MountRequest } from '../lib/host/mounts.ts'
import { neverMounted } from '../lib/policy/security.ts'
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

const plan = (over: Partial<MountRequest>) => planMounts({ owner: { ...owner, home: '/nonexistent-home' }, policy: noPolicy, requested: [], neverMounted: neverMounted(), ...over })

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

t.test('proveBinds: a mount at exactly each target, read-only as asked, of the very object judged', async t => {
  const dir = tree(t)
  const mounts = await plan({ workDir: join(dir, 'rw/project') })
  const binds = mounts.map(m => ({ target: m.target, readOnly: true, identity: m.identity, what: `PBS_O_WORKDIR ${m.source}` }))
  // A "container" whose root is the host's, and whose mount table is written here.
  const proc = join(dir, 'proc')
  mkdirSync(join(proc, '42'), { recursive: true })
  symlinkSync('/', join(proc, '42/root'))
  const table = (...lines: string[]) => writeFileSync(join(proc, '42/mountinfo'), lines.map(l => `${l}\n`).join(''))
  const at = (point: string, options = 'ro,relatime') => `91 74 254:0 /x ${point.replaceAll(' ', '\\040')} ${options} - ext4 /dev/vda rw`
  table('74 50 0:39 / / rw,relatime - overlay overlay rw', at(binds[0].target))
  proveBinds(42, binds, proc)
  t.pass('the judged directory, mounted at its target')
  // The engine followed a swapped link and mounted elsewhere: the directory is still seen
  // at the target through a parent mount, but nothing is mounted there.
  table('74 50 0:39 / / rw,relatime - overlay overlay rw', at('/home/victim/private'))
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError', message: /changed while the job's container was made/ })
  table(at(binds[0].target), '95 91 0:50 / ' + binds[0].target + ' ro - tmpfs tmpfs ro')
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError' }, 'something else mounted on top')
  table(at(binds[0].target, 'rw,relatime'))
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError' }, 'read-write where read-only was asked')
  proveBinds(42, binds, proc, { readOnlyShown: false })
  t.pass('a table that cannot show read-only (gVisor\'s gofer): the runtime enforces it, the rest is proven')
  table(at(binds[0].target))
  renameSync(join(dir, 'rw/project'), join(dir, 'rw/elsewhere'))
  mkdirSync(join(dir, 'rw/project'))
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError', message: /changed while the job's container was made/ }, 'another directory')
  renameSync(join(dir, 'rw/project'), join(dir, 'rw/other'))
  symlinkSync(join(dir, 'rw/elsewhere'), join(dir, 'rw/project'))
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError' }, 'the same directory, but through a link now')
  rmSync(join(proc, '42/mountinfo'))
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError', message: /cannot read the mount table/ })
})

t.test('proveBinds: host mounts nested below a bind\'s source (a recursive bind) are not a second mount at its target', async t => {
  const dir = tree(t)
  const mounts = await plan({ workDir: join(dir, 'rw/project') })
  const binds = mounts.map(m => ({ target: m.target, readOnly: false, identity: m.identity, what: `PBS_O_WORKDIR ${m.source}` }))
  const proc = join(dir, 'proc')
  mkdirSync(join(proc, '42'), { recursive: true })
  symlinkSync('/', join(proc, '42/root'))
  const table = (...lines: string[]) => writeFileSync(join(proc, '42/mountinfo'), lines.map(l => `${l}\n`).join(''))
  const target = binds[0].target
  // E.g. /home a mount and /home/x/.snapshots another: the engine binds the source with its submounts.
  const nested = [`96 91 0:51 / ${target}/.snapshots ro,relatime - btrfs /dev/vdb ro`, `97 91 0:52 /deep ${target}/a/b rw,relatime - ext4 /dev/vdc rw`]
  table('74 50 0:39 / / rw,relatime - overlay overlay rw', `91 74 254:0 /x ${target} rw,relatime - ext4 /dev/vda rw`, ...nested)
  proveBinds(42, binds, proc)
  t.pass('accepted: only mounts exactly at the target count')
  // Nested mounts never stand in for the one at the target.
  table('74 50 0:39 / / rw,relatime - overlay overlay rw', ...nested)
  t.throws(() => proveBinds(42, binds, proc), { name: 'UnsafePathError', message: /changed while the job's container was made/ })
})

t.test('what a container shows is looked up inside it, never through a link into the host', async t => {
  const dir = tree(t)
  // An image whose /.cbatch is an absolute link: from the host it would name the host's path.
  const root = join(dir, 'image-root')
  mkdirSync(root)
  symlinkSync('/etc', join(root, '.cbatch'))
  mkdirSync(join(dir, 'proc/7'), { recursive: true })
  symlinkSync(root, join(dir, 'proc/7/root'))
  t.equal(shownInContainer(7, '/.cbatch/passwd', join(dir, 'proc')), undefined)
  mkdirSync(join(root, 'real'))
  t.same(shownInContainer(7, '/real', join(dir, 'proc'))?.ino, statSync(join(root, 'real')).ino)
})

t.test('mount tables are read as the kernel escapes them', async t => {
  t.same(parseMountInfo('36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n'), [{ mountPoint: '/mnt/a b', options: ['rw', 'noatime'] }])
})
