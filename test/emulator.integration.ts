// The emulator (`cbatch run`) runs as root: it keeps the rules the hooks keep
// (docs/security.md, rule 7). Another user reads every command line on the node, plants
// links where it may write, and sets the job's PATH and LD_PRELOAD; root's files stay as
// they are and the job's secret stays the job's.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_PBS_HOME, emulateJob, type EmulatorOptions } from '../emulator/emulator.ts'
import { EMULATOR_TOOLS } from '../emulator/tm.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'
import { containersLeft, hostId, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

const OTHER_USER = 'cbatchdemo'
const shared = sharedDir()
t.teardown(shared.dispose)
const config = writeConfig(shared.path, `log: { file: ${shared.path}/cbatch.log }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
    volumes: [{ source: ${shared.path} }]
  tm:
    image: ${TEST_IMAGE}
    pull: never
    network: host
    volumes: [{ source: ${shared.path} }, { source: ${EMULATOR_TOOLS}, target: /opt/torque/bin, readOnly: true }]
`)
/** A shell command run on the host as `user`, with their groups. */
const as = (user: string, command: string) => spawnSync('setpriv', [`--reuid=${hostId('-u', user)}`, `--regid=${hostId('-g', user)}`, '--init-groups', '--',
  '/bin/sh', '-c', command], { encoding: 'utf8' })

// Root's files the attacks aim at: each must keep its content, owner and mode.
const canaries = `/var/lib/cbatch-test/emulator-${process.pid}`
mkdirSync(canaries, { recursive: true, mode: 0o700 })
t.teardown(() => rmSync(canaries, { recursive: true, force: true }))
const canary = join(canaries, 'secret')
writeFileSync(canary, '#!/bin/sh\necho root-secret\n', { mode: 0o600 })
const canaryState = () => `${readFileSync(canary, 'utf8')} ${statSync(canary).uid} ${statSync(canary).mode.toString(8)} ${readdirSync(canaries).sort()}`
const pristine = canaryState()

function script(text: string): string {
  const file = join(shared.path, `job-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(file, `#!/bin/sh\n${text}`, { mode: 0o644 })
  return file
}

const run = (text: string, extra: Partial<EmulatorOptions> = {}) => emulateJob({
  script: script(text), user: TEST_USER, queue: 'batch', resources: 'nodes=1:ppn=1', config,
  hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path, ...extra,
})

t.test('a TM task\'s cookie is never on a command line: another user reading every /proc/PID/cmdline during pbsdsh finds nothing', async t => {
  // The other user dumps every command line and environment it may read, while the job's pbsdsh waits for its task.
  const spy = spawn('setpriv', [`--reuid=${hostId('-u', OTHER_USER)}`, `--regid=${hostId('-g', OTHER_USER)}`, '--init-groups', '--', '/bin/sh', '-c',
    'while :; do for p in /proc/[0-9]*; do cat $p/cmdline $p/environ 2>/dev/null; echo; done; sleep 0.05; done'], { stdio: ['ignore', 'pipe', 'ignore'] })
  let seen = ''
  spy.stdout.on('data', d => (seen += d))
  const job = await run('/opt/torque/bin/pbsdsh -n 1 sh -c \'sleep 3; echo task done\'\necho shell done\n', { queue: 'tm', resources: 'nodes=1:ppn=2', keep: true })
  spy.kill()
  const jobFile = join(DEFAULT_PBS_HOME, 'mom_priv/jobs', `${jobFilePrefix(job.jobId)}.JB`)
  const cookie = /<cookie[^>]*>([0-9A-F]+)</.exec(readFileSync(jobFile, 'utf8'))?.[1]
  for (const f of ['mom_priv/jobs/%.SC', 'mom_priv/jobs/%.JB', 'spool/%.OU', 'spool/%.ER', 'aux/%']) rmSync(join(DEFAULT_PBS_HOME, f.replace('%', jobFilePrefix(job.jobId))), { force: true })
  t.equal(job.exitStatus, 0, job.stderr)
  t.match(job.stdout, /task done\n[^]*shell done\n/, 'the task ran, through pbs_mom, while pbsdsh waited')
  t.ok(cookie && cookie.length >= 32, 'the job had its cookie')
  t.match(seen.replace(/\0/g, ' '), /wget -q -O - --post-file \/dev\/stdin http:\/\/127\.0\.0\.1:\d+\/spawn/, 'the other user did see pbsdsh\'s wget')
  t.notOk(seen.includes(cookie!), 'but nowhere the cookie')
})

t.test('links planted in a spool others may write to (as TORQUE\'s 1777 one) never make root write or chown root\'s files', async t => {
  const pbsHome = `/var/spool/cbatch-emulator-test-${process.pid}`
  t.teardown(() => rmSync(pbsHome, { recursive: true, force: true }))
  mkdirSync(join(pbsHome, 'spool'), { recursive: true })
  chmodSync(join(pbsHome, 'spool'), 0o1777)
  // The job ids this process gives next: <pid><sequence>.<host>.
  const names = Array.from({ length: 30 }, (_, i) => `${process.pid}${String(i + 1).padStart(2, '0')}.${hostname()}`)
  const planted = as(TEST_USER, names.map(n => `ln -s ${canary} ${pbsHome}/spool/${n}.OU; ln -s ${canary} ${pbsHome}/spool/${n}.ER`).join('; '))
  t.equal(planted.status, 0, planted.stderr)
  const job = await run('echo "out $(id -un)"\necho err >&2\n', { pbsHome })
  t.equal(job.exitStatus, 0, job.stderr)
  t.equal(job.stdout.split('\n')[0], `out ${TEST_USER}`, 'the job\'s output is its own')
  t.match(job.stderr, /^err\n/)
  t.equal(canaryState(), pristine, 'root\'s file: same content, owner and mode')
  const spool = lstatSync(join(pbsHome, 'spool'))
  t.same([spool.uid, (spool.mode & 0o7777).toString(8)], [0, '755'], 'the spool is root\'s alone from then on')
  t.equal(as(TEST_USER, `ln -s ${canary} ${pbsHome}/spool/late.OU`).status, 1, 'no new name can be planted')
  t.same(await containersLeft(job.jobId), [])
})

t.test('a PBS_HOME others could make or swap is refused before root makes anything in it', async t => {
  const made = join(shared.path, 'attacker-home')
  const link = join(shared.path, 'attacker-link')
  t.equal(as(TEST_USER, `mkdir -m 755 ${made} && ln -s ${canaries} ${link}`).status, 0)
  for (const [what, pbsHome, reason] of [
    ['made by another user', made, /is not owned by root/],
    ['a link of another user', link, /is not owned by root/],
    ['missing, in a directory anyone may write to', join(shared.path, 'missing'), /anyone may make a name in it first/],
  ] as const) {
    await t.rejects(run('echo ran\n', { pbsHome }), { name: 'UnsafePathError', message: reason }, what)
  }
  t.same(readdirSync(made), [], 'nothing made in the other user\'s directory')
  t.notOk(existsSync(join(shared.path, 'missing')))
  t.equal(canaryState(), pristine, 'nothing made where the link led')
})

t.test('the job script is read with its owner\'s rights: a link to root\'s file leads nowhere', async t => {
  const file = join(shared.path, 'linked-job.sh')
  t.equal(as(TEST_USER, `ln -s ${canary} ${file}`).status, 0)
  await t.rejects(emulateJob({ script: file, user: TEST_USER, queue: 'batch', resources: 'nodes=1:ppn=1', config, hooksDir: join(import.meta.dirname, '../dist'), workDir: shared.path }),
    { name: 'UsageError', message: `${TEST_USER} cannot read the job script ${file}` })
  t.equal(canaryState(), pristine)
})

t.test('root never finds a program through the job\'s PATH, nor runs one with its LD_PRELOAD (rlimits, terminals)', async t => {
  const evil = join(shared.path, 'evil-bin')
  const marks = join(shared.path, 'evil-marks')
  writeFileSync(marks, '', { mode: 0o666 })
  chmodSync(marks, 0o666)
  // Each records who ran it (also when a shell sources it: BASH_ENV, ENV), and lets the rest go on.
  const fake = (name: string) => `printf '#!/bin/sh\\necho "${name} $(/usr/bin/id -u 2>/dev/null || /bin/id -u)" >> ${marks}\\n' > ${evil}/${name} && chmod 755 ${evil}/${name}`
  t.equal(as(TEST_USER, `mkdir -m 755 ${evil} && ${['prlimit', 'script', 'python3', 'id', 'setpriv', 'sh', 'bash'].map(fake).join(' && ')}`).status, 0)
  const lib = join(shared.path, 'evil-mark.so')
  const cc = spawnSync('cc', ['-shared', '-fPIC', '-x', 'c', '-o', lib, '-'], {
    input: `#include <fcntl.h>\n#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void mark(void) { char b[48]; int fd = open("${marks}", O_WRONLY | O_APPEND); if (fd >= 0) { write(fd, b, snprintf(b, sizeof b, "preload %d\\n", (int)getuid())); close(fd); } }\n`,
  })
  t.equal(cc.status, 0, 'built a preload library')
  const variables = { PATH: `${evil}:/usr/bin:/bin`, LD_PRELOAD: lib, BASH_ENV: `${evil}/sh`, ENV: `${evil}/sh` }
  for (const queue of ['batch', 'unmanaged']) {
    const job = await run('echo ran\n', { queue, variables, resources: 'nodes=1:ppn=1,mem=256mb,vmem=1gb,file=10mb,pcput=100' })
    t.equal(job.exitStatus, 0, `${queue}: ${job.stderr}`)
    t.match(job.stdout, /^ran\n/)
  }
  const interactive = await run('', { variables, resources: 'nodes=1:ppn=1,mem=256mb', interactive: { input: 'echo "tty=$(tty)"\nexit 3\n' } })
  t.equal(interactive.exitStatus, 3, interactive.stderr)
  t.match(interactive.stdout, /tty=\/dev\/pts\/\d+/, 'an interactive job still has its terminal')
  const uid = hostId('-u')
  const lines = readFileSync(marks, 'utf8').split('\n').filter(Boolean)
  t.same(lines.filter(l => !l.endsWith(` ${uid}`)), [], `only the owner's own processes ever ran the job's programs or library: ${lines.join('; ')}`)
})
