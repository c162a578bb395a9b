// Paths root relies on: trusted only when no one but root can change what they name.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, existsSync, lchownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { appendToRootFile, assertRecordFile, assertRootControlled, makeRootDir, replaceFile } from '../lib/host/trusted.ts'
import { SOMEONE } from './helpers/jobs.ts'

const someone = SOMEONE
/** A shell command run as that non-root user (the test user), as a hostile one would. */
const asSomeone = (command: string) => spawnSync('setpriv', [`--reuid=${someone.uid}`, `--regid=${someone.gid}`, '--clear-groups', '--', '/bin/sh', '-c', command], { encoding: 'utf8' })

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

t.test('a file others may write to is never trusted, whatever its directories; a socket\'s mode is not judged', async t => {
  const dir = t.testdir({ 'cbatch.yaml': 'queues: {}\n', 'group.yaml': 'queues: {}\n', 'registry-auth.json': '{}' })
  chmodSync(join(dir, 'cbatch.yaml'), 0o666)
  chmodSync(join(dir, 'group.yaml'), 0o620)
  // The user really can rewrite it: what root would then obey.
  t.equal(asSomeone(`printf 'queues: { batch: { image: theirs } }\\n' >> ${join(dir, 'cbatch.yaml')}`).status, 0)
  for (const name of ['cbatch.yaml', 'group.yaml']) {
    const file = join(dir, name)
    t.throws(() => assertRootControlled(file, 'cbatch config'), { name: 'UnsafePathError', message: `cbatch config ${file} is not safe: others may write to ${file} (chmod go-w ${file})` })
  }
  t.doesNotThrow(() => assertRootControlled(join(dir, 'registry-auth.json'), 'registry credentials'))
  // The engine's socket is group docker's to connect to; only its directory says who may replace it.
  const sockets = mkdtempSync('/tmp/cbatch-sock-') // a socket's path: at most 107 bytes
  t.teardown(() => rmSync(sockets, { recursive: true, force: true }))
  const socket = join(sockets, 'engine.sock')
  const server = createServer().listen(socket)
  await new Promise(r => server.on('listening', r))
  t.teardown(() => { server.close() })
  chmodSync(socket, 0o660)
  t.doesNotThrow(() => assertRootControlled(socket, 'engine socket'))
})

t.test('root makes names only where no one else may make them first: sticky is not enough (strict)', async t => {
  const dir = t.testdir({ tmp: {}, safe: {} })
  const tmp = join(dir, 'tmp')
  chmodSync(tmp, 0o1777)
  // Whether the user made the name first or not, the answer is the same: a squat cannot change it.
  for (const squat of [false, true]) {
    if (squat) t.equal(asSomeone(`mkdir ${tmp}/scratch`).status, 0)
    t.throws(() => assertRootControlled(join(tmp, 'scratch'), 'scratch base', { strict: true, mayBeMissing: true }),
      { message: new RegExp(`others may write to ${tmp} \\(sticky, but anyone may make a name in it first\\): keep it in a directory only root may write to`) }, `squatted: ${squat}`)
    t.throws(() => assertRootControlled(join(tmp, 'deep/er/cbatch.log'), 'node log', { strict: true, mayBeMissing: true }), { message: /sticky/ })
  }
  t.doesNotThrow(() => assertRootControlled(join(dir, 'safe/not/yet/made'), 'scratch base', { strict: true, mayBeMissing: true }))
  t.equal(asSomeone(`mkdir ${dir}/safe/scratch`).status === 0, false, 'and where it is safe, the user cannot make it')
})

t.test('root\'s state directories are made with exactly their mode, whatever the umask, and tightened when found looser', async t => {
  const dir = t.testdir({ old: {} })
  for (const umask of [0o077, 0o022, 0]) {
    const previous = process.umask(umask)
    try {
      makeRootDir(join(dir, `u${umask}/state/image-use`), 'image use directory')
      makeRootDir(join(dir, `u${umask}/textfile`), 'metrics textfile directory', 0o755)
    } finally {
      process.umask(previous)
    }
    for (const made of ['', '/state', '/state/image-use']) t.equal(statSync(join(dir, `u${umask}${made}`)).mode & 0o7777, 0o700, `umask ${umask.toString(8)}: u${made}`)
    t.equal(statSync(join(dir, `u${umask}/textfile`)).mode & 0o7777, 0o755)
  }
  const old = join(dir, 'old')
  chmodSync(old, 0o755)
  makeRootDir(old, 'image use directory')
  t.equal(statSync(old).mode & 0o7777, 0o700, 'an older, world-readable one is tightened')
  t.equal(asSomeone(`ls ${old}`).status === 0, false, 'and others can no longer list it')
})

t.test('a state directory is never made in, or through, what others control', async t => {
  const dir = t.testdir({ tmp: {}, target: {} })
  const tmp = join(dir, 'tmp')
  chmodSync(tmp, 0o1777)
  t.throws(() => makeRootDir(join(tmp, 'cbatch'), 'cbatch state directory'), { name: 'UnsafePathError', message: /sticky/ })
  t.notOk(existsSync(join(tmp, 'cbatch')), 'judged before it is made')
  t.equal(asSomeone(`ln -s ${dir}/target ${tmp}/planted`).status, 0)
  t.throws(() => makeRootDir(join(tmp, 'planted/cbatch'), 'cbatch state directory'), { name: 'UnsafePathError' })
  t.same(readdirSync(join(dir, 'target')), [], 'nothing made through the user\'s link')
})

t.test('a record file is root\'s own regular file with one name, writable by root alone, where only root makes names', async t => {
  const dir = t.testdir({ logs: { 'ok.log': '', 'open.log': '', 'linked.log': '' }, tmp: {} })
  const logs = join(dir, 'logs')
  chmodSync(join(logs, 'open.log'), 0o666)
  linkSync(join(logs, 'linked.log'), join(dir, 'second-name'))
  chmodSync(join(dir, 'tmp'), 0o1777)
  t.doesNotThrow(() => assertRecordFile(join(logs, 'ok.log'), 'node log'))
  t.doesNotThrow(() => assertRecordFile(join(logs, 'new/cbatch.log'), 'node log'), 'made by root when first needed')
  t.throws(() => assertRecordFile(join(logs, 'open.log'), 'accounting file'), { message: /open\.log is not safe: others may write to .*open\.log \(chmod go-w/ })
  t.throws(() => assertRecordFile(join(logs, 'linked.log'), 'node log'), { message: /linked\.log is not safe: it has 2 names, so lines could be read or removed through another/ })
  t.throws(() => assertRecordFile(join(dir, 'tmp/cbatch.log'), 'node log'), { message: /sticky/ })
  // The hooks' appends refuse the same files, and write nothing to them.
  for (const name of ['open.log', 'linked.log']) {
    t.throws(() => appendToRootFile(join(logs, name), 'line\n', 'accounting file'), { name: 'UnsafePathError' }, name)
    t.equal(readFileSync(join(logs, name), 'utf8'), '', `${name}: nothing appended`)
  }
  t.equal(lstatSync(join(logs, 'open.log')).mode & 0o777, 0o666, 'left as found, for the admin to see')
  spawnSync('mkfifo', [join(logs, 'fifo')])
  t.throws(() => assertRecordFile(join(logs, 'fifo'), 'node log'), { message: /not a regular file/ })
})
