// The built hooks: the loader (dist/cbatch.d/load.cjs) writes, reuses and never blindly
// trusts their code cache; the bundles carry no needless work.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { writeWrappers } from '../hooks/wrapper.ts'

const DIST = join(import.meta.dirname, '../dist/cbatch.d')
/** The validated copy of a test install's config (lib/policy/config.ts). */
const configCopy = (dir: string) => `config-${createHash('sha256').update(join(dir, 'cbatch.yaml')).digest('hex').slice(0, 16)}.json`

/** A copy of the loader and the prologue, its wrapper, and a config without the job's queue: no engine. */
function installed(t: Test): string {
  const dir = t.testdir({ 'cbatch.yaml': 'log: { file: "" }\nqueues:\n  batch: { image: busybox }\n' })
  for (const file of ['load.cjs', 'prologue.cjs', 'jobstarter.cjs']) copyFileSync(join(DIST, file), join(dir, file))
  writeWrappers(join(dir, 'hooks'), { node: process.execPath, config: join(dir, 'cbatch.yaml'), elsewhere: { momPriv: dir, bundles: dir } })
  return dir
}

function prologue(dir: string) {
  return spawnSync(join(dir, 'hooks/prologue'), ['1.node', 'someone', 'users', 'job', 'nodes=1', 'native', ''], { env: {}, encoding: 'utf8' })
}

const digestOf = (dir: string) => createHash('sha256').update(readFileSync(join(dir, 'prologue.cjs'))).digest()

t.test('the first run with a validated config writes the cache, later runs use it as it is', async t => {
  const dir = installed(t)
  const validating = prologue(dir)
  t.equal(validating.status, 0, validating.stderr)
  t.ok(existsSync(join(dir, configCopy(dir))), 'the first run validated the config and kept it')
  t.notOk(existsSync(join(dir, 'prologue.cjs.cache')), 'and wrote no code cache: it would hold the YAML parser and schema too')
  const first = prologue(dir)
  t.equal(first.status, 0, first.stderr)
  const cache = readFileSync(join(dir, 'prologue.cjs.cache'))
  t.same(cache.subarray(0, 32), digestOf(dir), 'keyed by the bundle\'s digest')
  t.ok(cache.length > 10_000, 'holds compiled code')
  const written = statSync(join(dir, 'prologue.cjs.cache')).mtimeMs
  const second = prologue(dir)
  t.equal(second.status, 0, second.stderr)
  t.equal(statSync(join(dir, 'prologue.cjs.cache')).mtimeMs, written, 'a valid cache is not rewritten')
})

t.test('the hooks keep their validated config beside their bundles, and the next hook uses it', async t => {
  const dir = installed(t)
  t.equal(prologue(dir).status, 0)
  const kept = join(dir, configCopy(dir))
  t.match(JSON.parse(readFileSync(kept, 'utf8')).config.queues, [['batch', { image: 'busybox' }]])
  // Shown by altering the kept copy (as root would): the job's queue becomes one cbatch
  // manages, through an engine that is not there, although the YAML did not change.
  writeFileSync(kept, readFileSync(kept, 'utf8').replace('[["batch",', '[["native",').replace('"socket":"/var/run/docker.sock"', `"socket":"${dir}/none.sock"`).replace('"requeuePause":10', '"requeuePause":0'))
  const r = prologue(dir)
  t.equal(r.status, 2, r.stderr)
  t.match(r.stderr, 'Docker engine error')
})

t.test('a cache of another bundle, or one V8 refuses, is replaced and the hook still runs', async t => {
  const dir = installed(t)
  prologue(dir) // validates the config: later runs write the code cache
  const cacheFile = join(dir, 'prologue.cjs.cache')
  for (const [what, content] of [
    ['another bundle', Buffer.concat([Buffer.alloc(32, 1), Buffer.alloc(4096, 7)])],
    ['garbage V8 data', Buffer.concat([digestOf(dir), Buffer.alloc(4096, 7)])],
  ] as const) {
    writeFileSync(cacheFile, content)
    const r = prologue(dir)
    t.equal(r.status, 0, `${what}: ${r.stderr}`)
    const cache = readFileSync(cacheFile)
    t.same(cache.subarray(0, 32), digestOf(dir), `${what}: rewritten for this bundle`)
    t.notSame(cache.subarray(32, 64), Buffer.alloc(32, 7), `${what}: with V8's own data`)
  }
})

t.test('a run that fails writes no cache: a cache holds the path jobs take', async t => {
  const dir = installed(t)
  writeFileSync(join(dir, 'cbatch.yaml'), `engine: { socket: ${dir}/none.sock, requeuePause: 0 }\nqueues:\n  native: { image: busybox }\n`)
  const r = prologue(dir)
  t.equal(r.status, 2, 'an engine that is not there requeues the job')
  t.match(r.stderr, 'Docker engine error')
  t.notOk(existsSync(join(dir, 'prologue.cjs.cache')))
})

t.test('the bundles format no debug log of the engine client while it is off', async t => {
  // docker-modem would util.inspect every request for a log nobody reads (scripts/build.mjs).
  for (const hook of ['prologue', 'jobstarter', 'epilogue']) {
    t.match(readFileSync(join(DIST, `${hook}.cjs`), 'utf8'), /\.enabled&&\w+\("Sending: %s"/, hook)
  }
})

t.test('only cbatch\'s hooks can be started', async t => {
  const dir = installed(t)
  for (const hook of ['../prologue', 'cbatch', '']) {
    const r = spawnSync(process.execPath, [join(dir, 'load.cjs'), hook], { env: {}, encoding: 'utf8' })
    t.equal(r.status, 2, hook)
    t.match(r.stderr, 'cbatch: unknown hook')
  }
})

t.test('a bundle root may not trust runs nothing, and each hook says so in pbs_mom\'s terms', async t => {
  const dir = installed(t)
  // Others may write to it: whatever it holds now is not cbatch's to run as root.
  for (const [hook, status] of [['prologue', 2], ['prologue.parallel', 2], ['epilogue', 2], ['epilogue.parallel', 2], ['jobstarter', 125], ['nodecheck', 1]] as const) {
    const bundle = join(dir, `${hook.replace(/\.parallel$/, '')}.cjs`)
    writeFileSync(bundle, 'require("node:fs").writeFileSync(process.env.RAN, "ran")\n')
    chmodSync(bundle, 0o666)
    const ran = join(dir, 'ran')
    const r = spawnSync(process.execPath, [join(dir, 'load.cjs'), hook], { env: { RAN: ran }, encoding: 'utf8' })
    t.equal(r.status, status, `${hook}: ${r.stderr}`)
    t.match(r.stderr, /^cbatch: cbatch hook bundle \S+ is not safe: others may write to /, hook)
    t.notOk(existsSync(ran), `${hook}: its bundle did not run`)
    // The node check marks the node down: pbs_mom reads its ERROR line.
    t.match(r.stdout, hook === 'nodecheck' ? /^ERROR cbatch: cbatch hook bundle \S+ is not safe/ : /^$/, hook)
  }
  // The job starter's bundle missing: the job did not run either.
  rmSync(join(dir, 'jobstarter.cjs'))
  const missing = spawnSync(process.execPath, [join(dir, 'load.cjs'), 'jobstarter'], { env: {}, encoding: 'utf8' })
  t.equal(missing.status, 125, missing.stderr)
})

t.test('a hook started without its wrapper runs nothing', async t => {
  const dir = installed(t)
  // As if a job's variables named another config: node started directly is refused.
  const r = spawnSync(process.execPath, [join(dir, 'load.cjs'), 'jobstarter', '/bin/sh'],
    { env: { CBATCH_CONFIG: join(dir, 'cbatch.yaml'), CBATCH_MOM_PRIV: dir, PBS_JOBID: '1.node', USER: 'root', PBS_QUEUE: 'native', HOME: '/' },
      input: 'echo ran\n', encoding: 'utf8' })
  t.equal(r.status, 125)
  t.equal(r.stdout, '')
  t.equal(r.stderr, 'cbatch: cbatch hooks must be started through their installed wrapper\n')
})

t.test('a job limit root cannot lift is named to the owner, never a crash of the starter', async t => {
  const dir = installed(t)
  const capable = (BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`) >> 24n) & 1n
  // pbs_mom's vmem=512mb and mem=48mb, hard, on the starter.
  for (const [limit, what] of [['--as=536870912:536870912', 'vmem (512 MiB)'], ['--data=50331648:50331648', 'mem (48 MiB)']]) {
    const r = spawnSync('prlimit', [limit, '--', join(dir, 'hooks/jobstarter'), '/bin/sh'], { env: { PBS_JOBID: '1.node' }, encoding: 'utf8', input: 'true\n' })
    if (capable) {
      t.notMatch(r.stderr, 'CAP_SYS_RESOURCE', `${what}: lifted where root may`)
    } else {
      t.equal(r.status, 125, what)
      t.match(r.stderr, new RegExp(`^cbatch: the job's ${what.replace(/[()]/g, '\\$&')} also limits cbatch's job starter, which needs \\d+ MiB, and root on this node cannot lift it \\(it lacks CAP_SYS_RESOURCE\\)`), what)
    }
  }
})
