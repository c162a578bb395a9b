// The release tarball (npm run release), as a site installs it on a fresh node: unpacked away
// from the source tree, installed by its own install.sh with no npm on PATH and no network
// (unshare -n), into a scratch PBS_HOME; then a job runs in a container through the installed
// bundles, the installed node check passes, and the printed cron lines work as printed.
import t from 'tap'
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { containersOf, hostId, TEST_IMAGE, TEST_USER } from './helpers/jobs.ts'

const REPO = join(import.meta.dirname, '..')
const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'))

// A node's root-owned places, away from the repository (no node_modules above them).
mkdirSync('/var/lib/cbatch-test', { recursive: true, mode: 0o755 })
const root = mkdtempSync('/var/lib/cbatch-test/release-')
chmodSync(root, 0o755) // the job's owner reaches their work directory below it
t.teardown(() => rmSync(root, { recursive: true, force: true }))
const pbsHome = join(root, 'torque')
const configDir = join(root, 'etc')
const binDir = join(root, 'sbin')
mkdirSync(join(pbsHome, 'mom_priv'), { recursive: true })
writeFileSync(join(pbsHome, 'mom_priv/config'), '$pbsserver head\n')

// The PATH of a node with Node 20 but no npm: every program of the system's but npm's.
const path = join(root, 'path')
mkdirSync(path)
for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin']) {
  if (!existsSync(dir)) continue
  for (const name of readdirSync(dir)) {
    if (!/^(npm|npx|corepack)$/.test(name) && !existsSync(join(path, name))) symlinkSync(join(dir, name), join(path, name))
  }
}
const home = mkdtempSync(join(root, 'home-'))
const nodeEnv = { PATH: path, HOME: home, LANG: 'C.UTF-8' }

// No network for what runs on the node, where this machine allows a network namespace.
const offline = spawnSync('/usr/bin/unshare', ['-n', 'true']).status === 0
const onNode = (command: string, args: string[], options: SpawnSyncOptions = {}) => {
  const started = Date.now()
  const r = spawnSync(offline ? '/usr/bin/unshare' : command, offline ? ['-n', '--', command, ...args] : args,
    { encoding: 'utf8', env: nodeEnv, cwd: root, ...options })
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr), seconds: (Date.now() - started) / 1000 }
}

t.test('npm run release makes one tarball, with no node_modules and bundles that need none', async t => {
  const started = Date.now()
  const release = spawnSync('npm', ['run', '--silent', 'release'], { cwd: REPO, encoding: 'utf8' })
  t.equal(release.status, 0, release.stderr)
  const size = statSync(join(REPO, 'release', `cbatch-${version}.tar.gz`)).size
  t.comment(`npm run release: ${((Date.now() - started) / 1000).toFixed(1)} s, ${(size / 1024 / 1024).toFixed(2)} MiB`)
  t.same(readdirSync(join(REPO, 'release')), [`cbatch-${version}.tar.gz`], 'one tarball under release/')
  const unpack = spawnSync('tar', ['-xzf', join(REPO, 'release', `cbatch-${version}.tar.gz`), '-C', root], { encoding: 'utf8' })
  t.equal(unpack.status, 0, unpack.stderr)
  const top = join(root, `cbatch-${version}`)
  const files = readdirSync(top, { recursive: true }) as string[]
  t.notOk(files.some(f => f.split('/').includes('node_modules')), 'no node_modules')
  t.notOk(files.includes('package.json'), 'no package to npm install')
  for (const f of ['install.sh', 'RELEASE', 'dist/cbatch', 'dist/prologue', 'dist/cbatch.d/prologue.cjs', 'config/cbatch.yaml', 'config/cbatch.schema.json']) {
    t.ok(files.includes(f), f)
  }
  // What a bundle requires by name is Node's own: nothing to find in a node_modules.
  const builtin = new Set(builtinModules)
  for (const bundle of ['dist/cbatch', ...files.filter(f => f.endsWith('.cjs'))]) {
    const required = [...readFileSync(join(top, bundle), 'utf8').matchAll(/\brequire\("([^"]+)"\)/g)].map(m => m[1])
    t.same(required.filter(m => !builtin.has(m.replace(/^node:/, ''))), [], `${bundle} requires Node's modules only`)
  }
})

t.test('its install.sh installs offline, without npm, in seconds', async t => {
  const top = join(root, `cbatch-${version}`)
  // An upgrade checks the site's config with the new release first (docs/admin.md).
  const check = onNode(join(top, 'dist/cbatch'), ['config', 'check', join(top, 'config/cbatch.yaml')])
  t.equal(check.status, 0, check.stderr)
  t.match(check.stdout, 'config/cbatch.yaml: valid')
  const r = onNode(join(top, 'install.sh'), ['--pbs-home', pbsHome, '--config-dir', configDir, '--bin-dir', binDir])
  t.equal(r.status, 0, r.stderr)
  t.comment(`install.sh from the release${offline ? ', under unshare -n' : ' (no unshare -n here: network not cut)'}: ${r.seconds.toFixed(1)} s`)
  t.ok(r.seconds < 30, 'in seconds, not a minute of npm ci')
  t.match(r.stdout, `installing cbatch ${version} (`)
  t.notMatch(r.stdout, 'npm')
  t.ok(existsSync(join(pbsHome, 'mom_priv/cbatch.d/prologue.cjs')))
  // The node's log of the installed hooks, and this engine's test image for the queue.
  writeFileSync(join(configDir, 'cbatch.yaml'), `log: { file: ${root}/cbatch.log }
torque: { home: ${pbsHome} }
queues:
  batch: { image: ${TEST_IMAGE}, pull: never }
`)
})

t.test('the installed node check finds the node fit', async t => {
  const r = onNode(join(pbsHome, 'mom_priv/cbatch-nodecheck'), [], { env: {} })
  t.equal(r.status, 0, r.stderr)
  t.notMatch(r.stdout, /^ERROR/m)
})

t.test('a job runs in a container through the installed bundles, by the cbatch on PATH', async t => {
  const work = mkdtempSync(join(root, 'work-'))
  chownSync(work, Number(hostId('-u')), Number(hostId('-g')))
  const script = join(work, 'job.sh')
  writeFileSync(script, '#!/bin/sh\necho "in a container: $(test -f /.dockerenv && echo yes || echo no) as $(id -un)"\n', { mode: 0o644 })
  const r = onNode(join(binDir, 'cbatch'), ['run', script, '--json', '--user', TEST_USER, '--pbs-home', pbsHome, '--workdir', work], { cwd: work })
  t.equal(r.status, 0, r.stderr)
  const job = JSON.parse(r.stdout)
  t.equal(job.outcome, 'ran')
  t.equal(job.exitStatus, 0)
  t.match(job.stdout, `in a container: yes as ${TEST_USER}`)
  t.match(readFileSync(join(root, 'cbatch.log'), 'utf8'), `"hook":"prologue"`, 'the installed config\'s log')
})

t.test('an upgrade while a job runs: the job ends as it started, the new epilogue removes its container', async t => {
  // Another build of the release (each build is its own), unpacked beside the first.
  const release = spawnSync('npm', ['run', '--silent', 'release'], { cwd: REPO, encoding: 'utf8' })
  t.equal(release.status, 0, release.stderr)
  const next = join(root, 'next')
  mkdirSync(next)
  spawnSync('tar', ['-xzf', join(REPO, 'release', `cbatch-${version}.tar.gz`), '-C', next])
  const digest = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex')
  const installed = join(pbsHome, 'mom_priv/cbatch.d/epilogue.cjs')
  const nextEpilogue = join(next, `cbatch-${version}`, 'dist/cbatch.d/epilogue.cjs')
  t.not(digest(installed), digest(nextEpilogue), 'the next build differs')

  const work = mkdtempSync(join(root, 'work-'))
  chownSync(work, Number(hostId('-u')), Number(hostId('-g')))
  const script = join(work, 'job.sh')
  writeFileSync(script, '#!/bin/sh\nsleep 6\necho "still here"\n', { mode: 0o644 })
  const job = spawn(offline ? '/usr/bin/unshare' : join(binDir, 'cbatch'), [...(offline ? ['-n', '--', join(binDir, 'cbatch')] : []),
    'run', script, '--json', '--user', TEST_USER, '--pbs-home', pbsHome, '--workdir', work], { cwd: work, env: nodeEnv })
  let stdout = ''
  job.stdout.on('data', d => (stdout += d))
  const ended = new Promise<number | null>(resolve => job.on('close', resolve))
  await new Promise(resolve => setTimeout(resolve, 3000))
  t.equal(job.exitCode, null, 'the job still runs when the upgrade starts')
  const upgrade = onNode(join(next, `cbatch-${version}`, 'install.sh'), ['--pbs-home', pbsHome, '--config-dir', configDir, '--bin-dir', binDir])
  t.equal(upgrade.status, 0, upgrade.stderr)
  t.equal(digest(installed), digest(nextEpilogue), 'the next build is installed while the job runs')
  t.equal(await ended, 0)
  const record = JSON.parse(stdout)
  t.equal(record.exitStatus, 0)
  t.match(record.stdout, 'still here')
  t.same(containersOf(record.jobId), [], 'the new epilogue removed the container the old prologue made')
})

t.test('the printed cron lines work as printed, in cron\'s environment', async t => {
  // The first build's install.sh again: a rollback.
  const install = onNode(join(root, `cbatch-${version}`, 'install.sh'), ['--pbs-home', pbsHome, '--config-dir', configDir, '--bin-dir', binDir])
  const lines = install.stdout.split('\n').filter(l => /^\S+ \S+ \S+ \S+ \S+ root /.test(l))
  t.equal(lines.length, 2, install.stdout)
  for (const line of lines) {
    const command = line.split(' ').slice(6).join(' ')
    const r = onNode('/bin/sh', ['-c', command], { env: { PATH: '/usr/bin:/bin', SHELL: '/bin/sh', HOME: '/root' } })
    t.equal(r.status, 0, `${command}: ${r.stderr}`)
  }
})
