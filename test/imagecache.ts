import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs'
import { SOMEONE } from './helpers/jobs.ts'
import { describeImages, lastUses, planPrune, recordImageUse, shortNames } from '../lib/node/imagecache.ts'

const MiB = 1024 ** 2
const image = (id: string, references: string[], size: number, created: string) => ({ id, references, size: size * MiB, created: new Date(created) })

t.test('each image with its last use by a job, the queues naming it, and whether a container uses it', async t => {
  const images = [image('a', ['site/a:1'], 100, '2026-01-01'), image('b', ['site/b:latest'], 50, '2026-01-02')]
  const queues = new Map([['batch', { image: 'site/b' }], ['other', { image: 'site/c:1' }]])
  const uses = new Map([['site/a:1', new Date('2026-03-01')]])
  t.match(describeImages(images, new Set(['a']), queues, uses), [
    { id: 'a', queues: [], inUse: true, lastUse: new Date('2026-03-01') },
    { id: 'b', queues: ['batch'], inUse: false, lastUse: undefined },
  ])
})

t.test('Podman\'s full names are found by the short names queues and jobs give', async t => {
  const images = [image('l', ['localhost/site/a:1'], 100, '2026-01-01'), image('h', ['docker.io/library/busybox:latest'], 5, '2026-01-02'),
    image('o', ['docker.io/someone/tool:2'], 5, '2026-01-02'), image('r', ['reg.example:5000/site/a:1'], 5, '2026-01-02')]
  const queues = new Map([['batch', { image: 'site/a:1' }], ['tiny', { image: 'busybox' }], ['tool', { image: 'someone/tool:2' }]])
  const uses = new Map([['site/a:1', new Date('2026-03-01')]])
  t.match(describeImages(images, new Set(), queues, uses), [
    { id: 'l', queues: ['batch'], lastUse: new Date('2026-03-01') },
    { id: 'h', queues: ['tiny'] },
    { id: 'o', queues: ['tool'] },
    { id: 'r', queues: [], lastUse: undefined },
  ])
  t.same(shortNames('docker.io/someone/library:1'), ['docker.io/someone/library:1', 'someone/library:1'])
  t.same(shortNames('reg.example:5000/library/x:1'), ['reg.example:5000/library/x:1'], 'other registries\' names are never shortened')
})

t.test('prune: least recently used first, down to the budget, never in use or named by a queue', async t => {
  const described = [
    { ...image('old', ['x:1'], 100, '2025-01-01'), queues: [], inUse: false, lastUse: new Date('2026-02-01') },
    { ...image('older', ['y:1'], 100, '2025-06-01'), queues: [], inUse: false, lastUse: undefined },
    { ...image('recent', ['z:1'], 100, '2025-01-01'), queues: [], inUse: false, lastUse: new Date('2026-05-01') },
    { ...image('used', ['u:1'], 500, '2020-01-01'), queues: [], inUse: true },
    { ...image('named', ['n:1'], 500, '2020-01-01'), queues: ['batch'], inUse: false },
  ]
  t.same(planPrune(described, 1300 * MiB).map(i => i.id), [])
  t.same(planPrune(described, 1150 * MiB).map(i => i.id), ['older', 'old'], 'never used by a job counts as its creation')
  t.same(planPrune(described, 0).map(i => i.id), ['older', 'old', 'recent'], 'what is in use or named stays, over budget')
})

t.test('last uses are recorded per reference, in a directory of root\'s', async t => {
  const dir = `${t.testdir({})}/uses`
  recordImageUse('site/a:1', dir)
  recordImageUse('site/b:1', dir)
  t.same([...lastUses(dir).keys()].sort(), ['site/a:1', 'site/b:1'])
  t.same(lastUses(`${dir}/missing`), new Map())
})

t.test('who ran which image, and when, is root\'s alone to read, whatever the umask; an older open record is closed', async t => {
  const state = `${t.testdir({})}/var-lib-cbatch`
  const dir = `${state}/image-use`
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  chmodSync(state, 0o755)
  chmodSync(dir, 0o755) // as an older cbatch made them
  const umask = process.umask(0o022) // pbs_mom's for some hooks (0077 for others)
  try {
    recordImageUse('site/secret-project:1', dir)
  } finally {
    process.umask(umask)
  }
  t.equal(statSync(state).mode & 0o777, 0o700)
  t.equal(statSync(dir).mode & 0o777, 0o700)
  for (const file of readdirSync(dir)) t.equal(statSync(`${dir}/${file}`).mode & 0o777, 0o600, file)
  // Another user of the node learns nothing from it.
  const look = spawnSync('setpriv', [`--reuid=${SOMEONE.uid}`, `--regid=${SOMEONE.gid}`, '--clear-groups', '--', '/bin/sh', '-c', `ls ${dir}; cat ${dir}/*`], { encoding: 'utf8' })
  t.not(look.status, 0)
  t.notMatch(look.stdout, 'secret-project')
  t.same([...lastUses(dir).keys()], ['site/secret-project:1'], 'root reads it still')
})
