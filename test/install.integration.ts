// install.sh against a scratch PBS_HOME: modes pbs_mom accepts, idempotence, dry run, uninstall,
// the CLI it puts on PATH, and the checks it makes before any long step.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'

const INSTALL = join(import.meta.dirname, '../install.sh')
const SITE_CONFIG = '$pbsserver head\n$job_starter /usr/local/bin/site-starter\n$job_starter_run_privileged false\n$usecp *:/home /home\n'
const SITE_PROLOGUE = '#!/bin/sh\necho site prologue\n'

const install = (dir: string, ...args: string[]) => {
  const r = spawnSync(INSTALL, ['--pbs-home', dir, '--config-dir', join(dir, 'etc'), '--bin-dir', join(dir, 'sbin'), '--no-build', ...args], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`install.sh ${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}
const snapshot = (dir: string): Record<string, string> => Object.fromEntries(
  readdirSync(dir, { recursive: true, withFileTypes: true }).filter(e => e.isFile()).map(e => {
    const path = join(e.parentPath, e.name)
    return [path.slice(dir.length), `${statSync(path).mode.toString(8)} ${readFileSync(path, 'utf8')}`]
  }))

const fresh = (t: Test) => t.testdir({ mom_priv: { config: SITE_CONFIG, prologue: SITE_PROLOGUE, jobs: {} } })

t.test('installs hooks pbs_mom accepts and the job starter lines once', async t => {
  const dir = fresh(t)
  install(dir)
  // The sister nodes' hooks share the bundles of the prologue and epilogue.
  for (const hook of ['prologue', 'epilogue', 'jobstarter', 'prologue.parallel', 'epilogue.parallel']) {
    const st = statSync(join(dir, 'mom_priv', hook))
    t.equal(st.uid, 0, `${hook} owned by root`)
    t.equal(st.mode & 0o777, 0o755, `${hook} r+x for root, not group/other writable`)
    t.match(readFileSync(join(dir, 'mom_priv', hook), 'utf8'), `load.cjs" ${hook} "$@"`, `${hook} starts its own hook`)
    t.ok(statSync(join(dir, 'mom_priv/cbatch.d', `${hook.replace('.parallel', '')}.cjs`)).isFile())
  }
  t.equal(readFileSync(join(dir, 'mom_priv/prologue.cbatch-orig'), 'utf8'), SITE_PROLOGUE, 'the site prologue is kept aside')
  const config = readFileSync(join(dir, 'mom_priv/config'), 'utf8')
  t.match(config, `#cbatch-disabled $job_starter /usr/local/bin/site-starter`)
  t.match(config, `#cbatch-disabled $job_starter_run_privileged false`)
  t.match(config, `$job_starter ${dir}/mom_priv/jobstarter # cbatch\n$job_starter_run_privileged true # cbatch\n`)
  t.match(config, '$usecp *:/home /home')
  t.ok(statSync(join(dir, 'etc/cbatch.yaml')).isFile(), 'example config put in place')

  const before = snapshot(dir)
  install(dir)
  t.same(snapshot(dir), before, 'a second run changes nothing')
})

t.test('--dry-run changes nothing and says what it would do', async t => {
  const dir = fresh(t)
  const before = snapshot(dir)
  const out = install(dir, '--dry-run')
  t.match(out, /would run: install .*mom_priv\/prologue/)
  t.same(snapshot(dir), before)
})

t.test('--uninstall restores what install changed', async t => {
  const dir = fresh(t)
  install(dir)
  install(dir, '--uninstall')
  t.equal(readFileSync(join(dir, 'mom_priv/config'), 'utf8'), SITE_CONFIG)
  t.equal(readFileSync(join(dir, 'mom_priv/prologue'), 'utf8'), SITE_PROLOGUE)
  t.same(readdirSync(join(dir, 'mom_priv')).sort(), ['config', 'jobs', 'prologue'])
  t.same(readdirSync(join(dir, 'sbin')), [], 'the cbatch it put on PATH is gone')
})

t.test('cbatch on PATH uses the config it was installed with and the node install.sh found, from cron\'s bare environment', async t => {
  const dir = fresh(t)
  const out = install(dir, '--node', process.execPath)
  const cli = join(dir, 'sbin/cbatch')
  t.equal(statSync(cli).mode & 0o777, 0o755)
  const check = spawnSync('/usr/bin/env', ['-i', cli, 'config', 'check'], { encoding: 'utf8' })
  t.equal(check.status, 0, check.stderr)
  t.match(check.stdout, `${dir}/etc/cbatch.yaml: valid`)
  for (const hook of ['prologue', 'jobstarter', 'epilogue.parallel']) {
    t.match(readFileSync(join(dir, 'mom_priv', hook), 'utf8'), `'${process.execPath}' "\${0%/*}/cbatch.d/load.cjs" ${hook}`, `${hook} starts that node`)
  }
  // The printed cron lines are /etc/cron.d lines (with the user) naming that cbatch.
  t.match(out, `\n*/15 * * * * root ${cli} gc --pbs-home ${dir}\n`)
  t.match(out, `\n17 3 * * * root ${cli} images pull\n`)
})

t.test('two moms on one node: the second install says whose cbatch it replaces, and uninstalling it leaves the first mom\'s', async t => {
  const dir = t.testdir({ first: { mom_priv: { config: '', jobs: {} } }, second: { mom_priv: { config: '', jobs: {} } } })
  const [first, second] = [join(dir, 'first'), join(dir, 'second')]
  install(first)
  const cli = join(first, 'sbin/cbatch')
  const other = spawnSync(INSTALL, ['--pbs-home', second, '--config-dir', join(second, 'etc'), '--bin-dir', join(first, 'sbin'), '--no-build'], { encoding: 'utf8' })
  t.match(other.stdout, `${cli} served another pbs_mom; now it serves ${second}/mom_priv`)
  install(first)
  spawnSync(INSTALL, ['--uninstall', '--pbs-home', second, '--bin-dir', join(first, 'sbin')], { encoding: 'utf8' })
  t.match(readFileSync(cli, 'utf8'), `'${first}/mom_priv/cbatch.d/cbatch'`, 'the first mom\'s cbatch stays')
})

t.test('preconditions come before the build: no mom_priv, or a node older than 20, fails at once', async t => {
  const dir = t.testdir({ 'old-node': '#!/bin/sh\nexit 1\n', shadow: { npm: '#!/bin/sh\ntouch "${0%/*}/npm-ran"\nexit 1\n' }, mom_priv: { config: '' } })
  spawnSync('chmod', ['0755', join(dir, 'old-node'), join(dir, 'shadow/npm')])
  // A source checkout without --no-build runs npm ci: here an npm that records being run.
  const bare = { env: { PATH: `${dir}/shadow:/usr/sbin:/usr/bin:/sbin:/bin` }, encoding: 'utf8' as const }
  const noMomPriv = spawnSync(INSTALL, ['--pbs-home', join(dir, 'absent'), '--bin-dir', join(dir, 'sbin')], bare)
  t.equal(noMomPriv.status, 1)
  t.match(noMomPriv.stderr, /mom_priv does not exist: is pbs_mom installed/)
  const oldNode = spawnSync(INSTALL, ['--pbs-home', dir, '--bin-dir', join(dir, 'sbin'), '--node', join(dir, 'old-node')], bare)
  t.equal(oldNode.status, 1)
  t.match(oldNode.stderr, 'old-node is not Node.js 20 or newer')
  t.notOk(readdirSync(join(dir, 'shadow')).includes('npm-ran'), 'npm never ran')
  t.same(readdirSync(join(dir, 'mom_priv')), ['config'], 'nothing installed')
})

t.test('refuses a PBS_HOME without mom_priv', async t => {
  const dir = t.testdir({})
  const r = spawnSync(INSTALL, ['--pbs-home', dir, '--no-build'], { encoding: 'utf8' })
  t.equal(r.status, 1)
  t.match(r.stderr, /mom_priv does not exist: is pbs_mom installed/)
})

t.test('the wrappers name the config directory chosen; the node check is added once, unless --no-node-check', async t => {
  const dir = fresh(t)
  install(dir)
  for (const hook of ['prologue', 'epilogue', 'jobstarter', 'cbatch-nodecheck']) {
    t.match(readFileSync(join(dir, 'mom_priv', hook), 'utf8'), `CBATCH_CONFIG='${dir}/etc/cbatch.yaml'`, hook)
  }
  install(dir)
  const config = readFileSync(join(dir, 'mom_priv/config'), 'utf8')
  t.equal(config.split(`$node_check_script ${dir}/mom_priv/cbatch-nodecheck # cbatch\n`).length, 2, 'exactly once')
  install(dir, '--uninstall')
  t.equal(readFileSync(join(dir, 'mom_priv/config'), 'utf8'), SITE_CONFIG)
  const out = install(dir, '--no-node-check')
  t.notMatch(readFileSync(join(dir, 'mom_priv/config'), 'utf8'), 'cbatch-nodecheck')
  t.match(out, 'no node check (--no-node-check)')
})

t.test('a site\'s own node check is kept', async t => {
  const dir = t.testdir({ mom_priv: { config: '$node_check_script /usr/sbin/nhc\n', jobs: {} } })
  const out = install(dir)
  t.match(out, 'keeping the site\'s $node_check_script')
  t.match(readFileSync(join(dir, 'mom_priv/config'), 'utf8'), /^\$node_check_script \/usr\/sbin\/nhc\n/)
  t.notMatch(readFileSync(join(dir, 'mom_priv/config'), 'utf8'), 'cbatch-nodecheck')
})

t.test('a config directory that could break the wrappers is refused', async t => {
  const dir = fresh(t)
  const r = spawnSync(INSTALL, ['--pbs-home', dir, '--config-dir', "/etc/it's", '--no-build'], { encoding: 'utf8' })
  t.equal(r.status, 1)
  t.match(r.stderr, 'may not hold quotes')
})

t.test('--help is the usage comment at the top, and nothing of the script below it', async t => {
  const help = spawnSync(INSTALL, ['--help'], { encoding: 'utf8' })
  t.equal(help.status, 0)
  t.match(help.stdout, /^Installs cbatch on a TORQUE compute node/)
  t.match(help.stdout, /\.\/install\.sh --uninstall/)
  t.notMatch(help.stdout, /set -eu|^PBS_HOME=|#!/m, 'no line of code')
})
