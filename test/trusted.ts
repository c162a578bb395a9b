// Paths root relies on: trusted only when no one but root can change what they name.
import t from 'tap'
import { chmodSync, chownSync, lchownSync, linkSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { appendToRootFile, assertRootControlled, replaceFile } from '../lib/host/trusted.ts'
import { hostId } from './helpers/jobs.ts'

const someone = { uid: Number(hostId('-u')), gid: Number(hostId('-g')) }

t.test('a path is root-controlled when every component is root\'s and only root may change it', async t => {
  const dir = t.testdir({ etc: { 'cbatch.yaml': 'x' }, open: { 'cbatch.yaml': 'x' }, sticky: { 'cbatch.yaml': 'x' }, theirs: { 'cbatch.yaml': 'x' } })
  chmodSync(join(dir, 'open'), 0o777)
  chmodSync(join(dir, 'sticky'), 0o1777)
  chownSync(join(dir, 'theirs'), someone.uid, someone.gid)
  t.doesNotThrow(() => assertRootControlled(join(dir, 'etc/cbatch.yaml'), 'config'))
  t.throws(() => assertRootControlled(join(dir, 'open/cbatch.yaml'), 'config'), { name: 'UnsafePathError', message: /others may write to/ })
  t.doesNotThrow(() => assertRootControlled(join(dir, 'sticky/cbatch.yaml'), 'config'), 'root\'s file in a sticky directory: no one else can swap it')
  t.throws(() => assertRootControlled(join(dir, 'sticky'), 'scratch base', { strict: true }), { message: /others may write to/ })
  t.throws(() => assertRootControlled(join(dir, 'theirs/cbatch.yaml'), 'config'), { message: /theirs is not owned by root/ })
  t.throws(() => assertRootControlled('relative/path', 'config'), { message: /not an absolute path/ })
})

t.test('links are followed only if root\'s, and their targets judged the same way', async t => {
  const dir = t.testdir({ real: { 'cbatch.yaml': 'x' }, theirs: {} })
  chownSync(join(dir, 'theirs'), someone.uid, someone.gid)
  symlinkSync(join(dir, 'real'), join(dir, 'link'))
  t.doesNotThrow(() => assertRootControlled(join(dir, 'link/cbatch.yaml'), 'config'))
  symlinkSync(join(dir, 'theirs'), join(dir, 'to-theirs'))
  t.throws(() => assertRootControlled(join(dir, 'to-theirs/x'), 'config', { mayBeMissing: true }), { message: /theirs is not owned by root/ })
  symlinkSync(join(dir, 'real'), join(dir, 'planted'))
  lchownSync(join(dir, 'planted'), someone.uid, someone.gid)
  t.throws(() => assertRootControlled(join(dir, 'planted/cbatch.yaml'), 'config'), { message: /planted is not owned by root/ })
})

t.test('a missing file passes only where no one else could create it', async t => {
  const dir = t.testdir({ run: {}, tmp: {} })
  chmodSync(join(dir, 'tmp'), 0o1777)
  t.doesNotThrow(() => assertRootControlled(join(dir, 'run/docker.sock'), 'engine socket', { mayBeMissing: true }))
  t.throws(() => assertRootControlled(join(dir, 'tmp/docker.sock'), 'engine socket', { mayBeMissing: true }), { message: /others may write to/ })
  t.throws(() => assertRootControlled(join(dir, 'run/docker.sock'), 'engine socket'), { message: /cannot be used/ })
})

t.test('appends go only to root\'s own regular file with one name, never through a link', async t => {
  const dir = t.testdir({ 'target': 'root\'s\n', 'theirs.log': '' })
  chownSync(join(dir, 'theirs.log'), someone.uid, someone.gid)
  symlinkSync(join(dir, 'target'), join(dir, 'link.log'))
  linkSync(join(dir, 'target'), join(dir, 'hard.log'))
  for (const name of ['link.log', 'theirs.log', 'hard.log']) {
    t.throws(() => appendToRootFile(join(dir, name), 'line\n', 'node log'), name)
  }
  t.equal(readFileSync(join(dir, 'target'), 'utf8'), 'root\'s\n', 'nothing written through a link or a second name')
  appendToRootFile(join(dir, 'new/dir/cbatch.log'), 'line\n', 'node log')
  t.equal(readFileSync(join(dir, 'new/dir/cbatch.log'), 'utf8'), 'line\n')
  mkdirSync(join(dir, 'open'), { mode: 0o777 })
  chmodSync(join(dir, 'open'), 0o777)
  t.throws(() => appendToRootFile(join(dir, 'open/cbatch.log'), 'line\n', 'node log'), { message: /others may write to/ })
})

t.test('files are replaced whole, with exactly the mode asked whatever the umask, never through what was there', async t => {
  const dir = t.testdir({ target: 'untouched\n', 'file': 'old\n' })
  // What a crashed writer of this pid left, or a planted link, at the temporary's name.
  symlinkSync(join(dir, 'target'), join(dir, `.file.${process.pid}`))
  const umask = process.umask(0o077) // pbs_mom's, for the prologue and the starter
  try {
    replaceFile(join(dir, 'file'), 'new\n', 0o644)
  } finally {
    process.umask(umask)
  }
  t.equal(readFileSync(join(dir, 'file'), 'utf8'), 'new\n')
  t.equal(statSync(join(dir, 'file')).mode & 0o777, 0o644)
  t.equal(readFileSync(join(dir, 'target'), 'utf8'), 'untouched\n')
  t.same(readdirSync(dir).sort(), ['file', 'target'], 'no temporary left')
})
