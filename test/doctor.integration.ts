// cbatch doctor against a real install (install.sh into a scratch PBS_HOME) and the real
// engine, then against what breaks nodes: each problem is a FAIL line with its fix.
import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { appendFileSync, chmodSync, linkSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CBATCH, hostId, TEST_IMAGE } from './helpers/jobs.ts'
import { PODMAN_SOCKET } from './helpers/engine.ts'

const INSTALL = join(import.meta.dirname, '../install.sh')

/** A node: hooks installed by install.sh into its PBS_HOME, and a config naming the real engine. */
function node(t: Test, queue = `{ image: ${TEST_IMAGE}, pull: never }`): { dir: string; config: string } {
  const dir = t.testdir({ mom_priv: { config: '$pbsserver head\n', jobs: {} }, mom_logs: {}, etc: {} })
  const r = spawnSync(INSTALL, ['--pbs-home', dir, '--config-dir', join(dir, 'etc'), '--bin-dir', join(dir, 'sbin'), '--no-build'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
  const config = join(dir, 'etc/cbatch.yaml')
  writeFileSync(config, `log: { file: ${dir}/log/cbatch.log }\naccounting: { file: "" }\nqueues:\n  batch: ${queue}\n`)
  return { dir, config }
}

const doctor = (n: { dir: string; config: string }) => {
  const r = spawnSync(CBATCH, ['doctor', '--config', n.config, '--pbs-home', n.dir], { encoding: 'utf8' })
  return { status: r.status, lines: r.stdout.trim().split('\n'), stderr: r.stderr }
}
const fails = (lines: string[]) => lines.filter(l => l.startsWith('FAIL'))
/** A shell command run as the non-root test user, as a hostile one would. */
const asUser = (command: string) => spawnSync('setpriv', [`--reuid=${hostId('-u')}`, `--regid=${hostId('-g')}`, '--clear-groups', '--', '/bin/sh', '-c', command], { encoding: 'utf8' })

t.test('a good install: no FAIL, exit 0', async t => {
  const r = doctor(node(t))
  t.equal(r.status, 0, r.lines.join('\n') + r.stderr)
  t.same(fails(r.lines), [])
  for (const what of ['config', 'hook prologue', 'hook epilogue.parallel', 'hook cbatch-nodecheck', 'hooks\' config', '$job_starter', '$node_check_script', 'mom_logs', '/bin/busybox', 'engine', 'queue batch image']) {
    t.ok(r.lines.some(l => l.startsWith(`ok   ${what}: `)), what)
  }
  t.ok(r.lines.some(l => /^warn pbs_mom: none runs here for /.test(l)), 'no pbs_mom of this PBS_HOME (whatever other moms run on the host): a warning')
  const json = JSON.parse(spawnSync(CBATCH, ['doctor', '--json', '--config', node(t).config], { encoding: 'utf8' }).stdout) as { verdict: string }[]
  t.ok(json.length > 10 && json.every(f => ['ok', 'warn', 'FAIL'].includes(f.verdict)))
})

t.test('Podman\'s service: the engine is named as what it says it is, and no live-restore warning', async t => {
  const n = node(t)
  writeFileSync(n.config, `engine: { kind: podman, socket: ${PODMAN_SOCKET} }\nlog: { file: "" }\naccounting: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
  const r = doctor(n)
  t.same(fails(r.lines), [], r.lines.join('\n'))
  t.ok(r.lines.some(l => new RegExp(`^ok   engine: Podman \\d+\\.\\d+\\.\\d+, API .* at ${PODMAN_SOCKET}$`).test(l)), r.lines.join('\n'))
  t.notOk(r.lines.some(l => l.includes('engine live-restore:')), 'no live-restore check for Podman')
  t.ok(r.lines.some(l => l.startsWith('ok   queue batch image: ')), 'the image, by the name the queue gives it')
})

t.test('broken nodes: each problem is a FAIL with its fix, exit 1', async t => {
  const cases: [string, (n: { dir: string; config: string }) => void, RegExp][] = [
    ['a hook others may write', n => chmodSync(join(n.dir, 'mom_priv/prologue'), 0o775), /^FAIL hook prologue: .* mode 775: pbs_mom refuses it \(-1\) -> chown root: .*; chmod 755 /],
    ['no $job_starter line', n => writeFileSync(join(n.dir, 'mom_priv/config'), readFileSync(join(n.dir, 'mom_priv/config'), 'utf8').replace(/^\$job_starter .*\n/m, '')), /^FAIL \$job_starter: 0 line\(s\)/],
    ['a duplicated $job_starter line', n => appendFileSync(join(n.dir, 'mom_priv/config'), `$job_starter ${n.dir}/mom_priv/jobstarter\n`), /^FAIL \$job_starter: 2 line\(s\)/],
    ['the engine down', n => writeFileSync(n.config, `engine: { socket: ${n.dir}/none.sock }\nlog: { file: "" }\nqueues:\n  batch: { image: x }\n`), /^FAIL engine: not usable at .*none\.sock.* -> start dockerd/],
    ['engine.kind not the engine that answers', n => writeFileSync(n.config, `engine: { kind: podman }\nlog: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`),
      /^FAIL engine kind: engine\.kind is podman, but Docker answers at \/var\/run\/docker\.sock -> set engine\.kind: docker/],
    ['a bad config', n => writeFileSync(n.config, 'queues:\n  batch:\n    image: x\n    pull: sometimes\n'), /^FAIL config: .*cbatch\.yaml:4:11: queues\.batch\.pull: "sometimes" is not one of missing, always, never/],
    // Said as the config error it is, at its line: the engine is not blamed for it.
    ['a malformed image reference', n => writeFileSync(n.config, 'log: { file: "" }\nqueues:\n  batch:\n    image: "Not A Valid Image!!"\n'),
      /^FAIL config: .*cbatch\.yaml:4:12: queues\.batch\.image: "Not A Valid Image!!" is not an image reference .*\[image-reference\] -> fix that line/],
    ['a default over the queue\'s maximum', n => writeFileSync(n.config, 'log: { file: "" }\nqueues:\n  batch: { image: x, limits: { defaultMem: 4gb, maxMem: 1gb } }\n'),
      /^FAIL config: .*cbatch\.yaml:3:44: queues\.batch\.limits\.defaultMem: 4 GiB is more than limits\.maxMem/],
    ['an image missing with pull: never', n => writeFileSync(n.config, 'log: { file: "" }\nqueues:\n  batch: { image: cbatch-test/absent:1, pull: never }\n'), /^FAIL queue batch image: cbatch-test\/absent:1 is missing and pull is never -> cbatch images pull --queue batch/],
    ['a scratch base others may write to', n => {
      mkdirSync(join(n.dir, 'scratch'), { mode: 0o777 })
      chmodSync(join(n.dir, 'scratch'), 0o777)
      writeFileSync(n.config, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: ${n.dir}/scratch, target: /scratch } }\n`)
    }, /^FAIL queues\.batch\.scratch\.base: .*others may write to .*\(chmod go-w /],
    ['a scratch base below a sticky directory, that a user made first', n => {
      mkdirSync(join(n.dir, 'tmp'))
      chmodSync(join(n.dir, 'tmp'), 0o1777)
      asUser(`mkdir ${n.dir}/tmp/cbatch-scratch`)
      writeFileSync(n.config, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: ${n.dir}/tmp/cbatch-scratch, target: /scratch } }\n`)
    }, /^FAIL queues\.batch\.scratch\.base: scratch base .*\/tmp\/cbatch-scratch is not safe: others may write to .*\/tmp \(sticky, but anyone may make a name in it first\): keep it in a directory only root may write to/],
    ['a config others may write to (chmod 666)', n => chmodSync(n.config, 0o666), /^FAIL config: .*cbatch\.yaml is not safe: others may write to .*cbatch\.yaml \(chmod go-w .*cbatch\.yaml\)$/],
    ['an accounting file others may write to', n => {
      writeFileSync(join(n.dir, 'accounting.jsonl'), '', { mode: 0o666 })
      chmodSync(join(n.dir, 'accounting.jsonl'), 0o666)
      writeFileSync(n.config, `accounting: { file: ${n.dir}/accounting.jsonl }\nlog: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never }\n`)
    }, /^FAIL accounting\.file: accounting file .* is not safe: others may write to .*accounting\.jsonl \(chmod go-w .*accounting\.jsonl\)/],
    ['a node log with a second hard link', n => {
      mkdirSync(join(n.dir, 'log'))
      writeFileSync(join(n.dir, 'log/cbatch.log'), '')
      linkSync(join(n.dir, 'log/cbatch.log'), join(n.dir, 'copy.log'))
    }, /^FAIL log\.file: node log .*cbatch\.log is not safe: it has 2 names.* -> keep it root's/],
    // pbs_mom logs a job's cookie there after a forged TM request: install.sh made it 0700.
    // The installed hooks read the config their wrappers name: doctor of another config would judge the wrong one.
    ['hooks installed for another config', n => {
      writeFileSync(join(n.dir, 'other.yaml'), readFileSync(n.config))
      n.config = join(n.dir, 'other.yaml')
    }, /^FAIL hooks' config: prologue, prologue\.parallel, jobstarter, epilogue, epilogue\.parallel, cbatch-nodecheck read .*\/etc\/cbatch\.yaml, not .*\/other\.yaml \(the config checked here\) -> cbatch doctor --config .*\/etc\/cbatch\.yaml to check theirs, or \.\/install\.sh --config-dir /],
    ['pbs_mom\'s log directory readable by its group', n => chmodSync(join(n.dir, 'mom_logs'), 0o750), /^FAIL mom_logs: .*\/mom_logs: mode 750, so other users may read the jobs' cookies pbs_mom logs there -> chmod 0700 .*\/mom_logs$/],
    ['pbs_mom\'s log directory searchable by others', n => chmodSync(join(n.dir, 'mom_logs'), 0o701), /^FAIL mom_logs: .*mode 701.* -> chmod 0700 .*\/mom_logs$/],
    ['a hook bundle others may write to', n => chmodSync(join(n.dir, 'mom_priv/cbatch.d/prologue.cjs'), 0o666), /^FAIL bundle prologue\.cjs: .*prologue\.cjs is not safe: others may write to .* -> \.\/install\.sh/],
  ]
  for (const [what, breakIt, expected] of cases) {
    const n = node(t)
    breakIt(n)
    const r = doctor(n)
    t.equal(r.status, 1, what)
    t.ok(fails(r.lines).some(l => expected.test(l)), `${what}: ${fails(r.lines).join(' | ') || r.stderr}`)
  }
})

t.test('an installed node check pbs_mom is never told to run is a warning with the line to add', async t => {
  const n = node(t)
  const momConfig = join(n.dir, 'mom_priv/config')
  writeFileSync(momConfig, readFileSync(momConfig, 'utf8').replace(/^\$node_check_script .*\n/m, ''))
  const r = doctor(n)
  t.equal(r.status, 0, 'a warning: the node check is the site\'s choice')
  const nodecheck = join(n.dir, 'mom_priv/cbatch-nodecheck')
  t.ok(r.lines.includes(`warn $node_check_script: none in ${momConfig}: ${nodecheck} never runs, so a node that cannot run jobs keeps taking them -> add the line: $node_check_script ${nodecheck} (./install.sh does)`), r.lines.join('\n'))
})

t.test('a config\'s warnings are warnings of doctor, with the rule that found them', async t => {
  const n = node(t)
  writeFileSync(n.config, `log: { file: "" }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, maxTasks: 200, pidsLimit: 100 }\n`)
  const r = doctor(n)
  t.ok(r.lines.some(l => /^warn config: .*cbatch\.yaml:3:70: queues\.batch\.maxTasks: 200 tasks is more than pidsLimit \(100\).*\[tasks-within-pids\] -> obeyed as written/.test(l)), r.lines.join('\n'))
})

t.test('CAP_SYS_RESOURCE is judged on the pbs_mom of this PBS_HOME, whose the job starter has', async t => {
  const n = node(t)
  const none = doctor(n)
  t.ok(none.lines.some(l => /^(ok  |warn) CAP_SYS_RESOURCE: root here \(no pbs_mom of this PBS_HOME runs: judged by this command's own/.test(l)), none.lines.join('\n'))
  // A process named pbs_mom, started with -d this PBS_HOME, without CAP_SYS_RESOURCE.
  const mom = join(n.dir, 'pbs_mom')
  writeFileSync(mom, '#!/bin/sh\nwhile :; do sleep 1; done\n', { mode: 0o755 })
  const child = spawn('setpriv', ['--bounding-set=-sys_resource', '--', mom, '-d', n.dir], { stdio: 'ignore' })
  t.teardown(() => { child.kill() })
  await new Promise(r => setTimeout(r, 300))
  t.equal(readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim(), 'pbs_mom')
  const r = doctor(n)
  t.ok(r.lines.some(l => l.startsWith(`warn CAP_SYS_RESOURCE: pbs_mom (pid ${child.pid}) lacks it: jobs asking for vmem under `)), r.lines.join('\n'))
})

t.test('config check refuses what doctor fails, before any job meets it; neither prints a terminal escape', async t => {
  const n = node(t)
  // A name with terminal escapes in it: printed visibly, never acted on.
  const odd = join(n.dir, 'etc/odd\u001b]0;owned\u0007\u009b2J.yaml')
  writeFileSync(odd, `log: { file: ${n.dir}/log/cbatch.log }\nqueues:\n  batch: { image: ${TEST_IMAGE}, pull: never, scratch: { base: /tmp/cbatch-scratch-${process.pid}, target: /scratch } }\n`)
  const check = spawnSync(CBATCH, ['config', 'check', odd], { encoding: 'utf8' })
  t.equal(check.status, 1, check.stdout + check.stderr)
  t.match(check.stdout, /odd\\x1b\]0;owned\\x07\\x9b2J\.yaml: queues\.batch\.scratch\.base: scratch base \/tmp\/cbatch-scratch-\d+ is not safe: others may write to \/tmp \(sticky/)
  const r = spawnSync(CBATCH, ['doctor', '--config', odd, '--pbs-home', n.dir], { encoding: 'utf8' })
  t.equal(r.status, 1)
  for (const out of [check.stdout, check.stderr, r.stdout, r.stderr]) t.notMatch(out.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/)
  t.match(r.stdout, /^FAIL queues\.batch\.scratch\.base: .*sticky/m)
  chmodSync(odd, 0o666)
  const open = spawnSync(CBATCH, ['config', 'check', odd], { encoding: 'utf8' })
  t.equal(open.status, 1)
  t.match(open.stdout, /is not safe: others may write to .*\(chmod go-w /)
})
