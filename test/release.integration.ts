// The release tarball (npm run release), as a site installs it on a fresh node: a clean
// Debian 12 root (debootstrap minbase with busybox-static, made by scripts/provision.sh)
// with Node 20 added and no npm (nor python),
// entered with chroot in a mount namespace of its own and no network (unshare -m -n). The
// tarball is installed there by its own install.sh into a scratch PBS_HOME; then a job runs
// in a container through the installed bundles, the installed node check passes, and the
// printed cron lines work as printed.
// The node shares with this host only what a node has of its own: the engine's socket,
// /proc, /sys, /dev, the scratch directory below and the job owner's home, mounted at the
// same paths (the engine mounts host paths into job containers, so the node's must be the host's).
import t from 'tap'
import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { containersLeft, hostId, TEST_IMAGE, TEST_USER } from './helpers/jobs.ts'

const REPO = join(import.meta.dirname, '..')
const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'))
/** scripts/provision.sh makes it. */
const DEBIAN_ROOT = '/var/cache/cbatch-test/debian12'

// A node's root-owned places, away from the repository (no node_modules above them).
mkdirSync('/var/lib/cbatch-test', { recursive: true, mode: 0o755 })
const root = mkdtempSync('/var/lib/cbatch-test/release-')
chmodSync(root, 0o755) // the job's owner reaches their work directory below it
const nodeRoot = mkdtempSync('/var/lib/cbatch-test/node-')
t.teardown(() => {
  rmSync(root, { recursive: true, force: true })
  rmSync(nodeRoot, { recursive: true, force: true })
})
const pbsHome = join(root, 'torque')
const configDir = join(root, 'etc')
const binDir = join(root, 'sbin')
mkdirSync(join(pbsHome, 'mom_priv'), { recursive: true })
writeFileSync(join(pbsHome, 'mom_priv/config'), '$pbsserver head\n')

// The fresh node: a copy of the clean root, with Node 20 where its Debian package puts it and
// the site's users (the job's owner) in its /etc. Nothing else of this host.
const copied = spawnSync('cp', ['-a', `${DEBIAN_ROOT}/.`, nodeRoot], { encoding: 'utf8' })
if (copied.status !== 0) throw new Error(`no clean Debian 12 root at ${DEBIAN_ROOT} (run scripts/provision.sh): ${copied.stderr}`)
copyFileSync(process.execPath, join(nodeRoot, 'usr/bin/node'))
chmodSync(join(nodeRoot, 'usr/bin/node'), 0o755)
for (const file of ['etc/passwd', 'etc/group']) copyFileSync(join('/', file), join(nodeRoot, file))

// Enters the node: binds what it shares with the host, then chroot; the command runs in `cwd`.
const enter = join(nodeRoot, '..', `${nodeRoot.split('/').pop()}-enter.sh`)
writeFileSync(enter, `#!/bin/sh
set -eu
node=$1 shared=$2 cwd=$3
shift 3
IFS=:
/usr/bin/mount --make-rprivate /
/usr/bin/mount -t proc proc "$node/proc"
/usr/bin/mount --rbind /sys "$node/sys"
/usr/bin/mount --rbind /dev "$node/dev"
/usr/bin/touch "$node/run/docker.sock"
/usr/bin/mount --bind /var/run/docker.sock "$node/run/docker.sock"
for dir in $shared; do
  /usr/bin/mkdir -p "$node$dir"
  /usr/bin/mount --bind "$dir" "$node$dir"
done
unset IFS
# The node's environment: what the caller set, none of the test runner's (NODE_OPTIONS...).
exec /usr/sbin/chroot "$node" /usr/bin/env -i PATH="$PATH" HOME="$HOME" LANG="$LANG" \${SHELL:+SHELL="$SHELL"} /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@"
`, { mode: 0o700 })
t.teardown(() => rmSync(enter, { force: true }))
const NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
const nodeEnv = { PATH: NODE_PATH, HOME: '/root', LANG: 'C.UTF-8' }
/** argv that runs `command` on the node, offline. */
// The scratch directory, and the job owner's home as a site shares it (NFS): pbs_mom starts the job there.
const shared = [root, `/home/${TEST_USER}`].join(':')
const onNodeArgv = (command: string, args: string[], cwd = root) => ['-m', '-n', '--', '/bin/sh', enter, nodeRoot, shared, cwd, command, ...args]
const onNode = (command: string, args: string[], options: SpawnSyncOptions = {}) => {
  const started = Date.now()
  const r = spawnSync('/usr/bin/unshare', onNodeArgv(command, args, String(options.cwd ?? root)),
    { encoding: 'utf8', ...options, env: { ...nodeEnv, ...options.env }, cwd: root })
  return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr), seconds: (Date.now() - started) / 1000 }
}

t.test('the node: Debian 12, Node 20, busybox-static, util-linux; no npm, no python, no network, none of this host\'s files', async t => {
  const r = onNode('/bin/sh', ['-c', `cat /etc/debian_version; node --version
for tool in npm npx corepack python3; do command -v $tool || echo no $tool; done
sed -n '3,$p' /proc/net/dev | cut -d: -f1 | tr -d ' '
test -e ${REPO} || echo no source tree
for tool in setpriv prlimit busybox; do command -v $tool; done; env`])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^12\.\d+\nv20\.\d+\.\d+\nno npm\nno npx\nno corepack\nno python3\n/)
  t.match(r.stdout, 'no python3\nlo\nno source tree\n', 'no network device but its own loopback: not even this host\'s registry on 127.0.0.1')
  t.match(r.stdout, '/usr/bin/setpriv\n/usr/bin/prlimit\n/usr/bin/busybox\n')
  t.notMatch(r.stdout, 'NODE_OPTIONS', 'nothing of the test runner\'s environment')
})

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
  t.comment(`install.sh from the release on the clean node: ${r.seconds.toFixed(1)} s`)
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
  const job = spawn('/usr/bin/unshare', onNodeArgv(join(binDir, 'cbatch'), ['run', script, '--json', '--user', TEST_USER, '--pbs-home', pbsHome, '--workdir', work], work),
    { cwd: root, env: nodeEnv })
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
  const epilogue = readFileSync(join(root, 'cbatch.log'), 'utf8').split('\n').filter(l => l.includes(record.jobId) && l.includes('"hook":"epilogue"'))
  t.same(await containersLeft(record.jobId), [], `the new epilogue removed the container the old prologue made: ${epilogue.join('\n')}`)
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
