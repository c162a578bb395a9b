// `cbatch doctor`: everything on a node that makes jobs fail or run unconfined, each with
// what to do about it. Read-only: it changes nothing.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, readFileSync, readdirSync, statfsSync, statSync } from 'node:fs'
import { dirname, join, normalize, resolve } from 'node:path'
import { STARTER_NEEDS } from '../torque/rlimits.ts'
import { BUNDLES, WRAPPED_HOOKS } from '../torque/hooks.ts'
import type { ContainerEngine, Engine, EngineDescription } from '../engine/engine.ts'
import { ConfigError, describeIssue } from '../errors.ts'
import { assertRootControlled } from '../host/trusted.ts'
import { checkHostPaths, loadConfig, type Config } from '../policy/config.ts'
import { missingRuntimes, runtimeVersions } from './runtimes.ts'

export type Verdict = 'ok' | 'warn' | 'FAIL'

export interface Finding {
  verdict: Verdict
  /** What was checked. */
  what: string
  /** What was found. */
  detail: string
  /** What to do, when not ok. */
  fix?: string
}

/** Where TORQUE keeps pbs_mom's files unless told otherwise. */
const DEFAULT_PBS_HOME = '/var/spool/torque'

/** Free space below which jobs' images or scratch files may no longer fit. */
const LOW_DISK = { fraction: 0.1, bytes: 5 * 1024 ** 3 }

export interface DoctorOptions {
  configPath: string
  /** This pbs_mom's PBS_HOME (default: torque.home of the config). */
  pbsHome?: string
  /** The engine of the config, made by the caller (lib/engine/open.ts). */
  engineFor: (config: Config) => Engine
}

export async function diagnose({ configPath, pbsHome, engineFor }: DoctorOptions): Promise<Finding[]> {
  const findings: Finding[] = []
  const add = (verdict: Verdict, what: string, detail: string, fix?: string) => findings.push({ verdict, what, detail, ...(fix ? { fix } : {}) })

  let config: Config | undefined
  try {
    config = await loadConfig(configPath)
    add('ok', 'config', `${config.file}: valid, queues ${[...config.queues.keys()].join(', ') || '(none)'}`)
    for (const w of config.warnings) add('warn', 'config', describeIssue(config.file, w), 'obeyed as written; change that line if it is not what you meant')
  } catch (err) {
    if (err instanceof ConfigError) {
      // One with a line is in the text; one without is the file itself (unsafe, unreadable): its message says the fix.
      for (const i of err.issues) add('FAIL', 'config', describeIssue(err.file, i), i.line ? 'fix that line (cbatch config check FILE lists every problem)' : undefined)
    } else add('FAIL', 'config', (err as Error).message)
  }
  const momPriv = join(pbsHome ?? config?.torque.home ?? DEFAULT_PBS_HOME, 'mom_priv')
  const mom = findMom(momPriv)
  checkHooks(momPriv, add)
  checkHooksConfig(momPriv, resolve(configPath), add)
  checkMomConfig(momPriv, mom, add)
  checkMomLogs(dirname(momPriv), add)
  checkBusybox(add)
  checkLiftingLimits(mom, add)
  if (!config) return findings

  const engine = engineFor(config)
  try {
    const about = await engine.describe()
    add('ok', 'engine', `${about.product} ${about.version}, API ${about.apiVersion}, cgroup v${about.cgroupVersion} (${about.cgroupDriver} driver) at ${config.engine.socket}`)
    if (about.product.toLowerCase() !== config.engine.kind) {
      add('FAIL', 'engine kind', `engine.kind is ${config.engine.kind}, but ${about.product} answers at ${config.engine.socket}`, `set engine.kind: ${about.product.toLowerCase()}`)
    }
    if (about.apiVersion.localeCompare('1.41', undefined, { numeric: true }) < 0) {
      add('FAIL', 'engine API', `${about.apiVersion} is older than 1.41`, 'upgrade the Docker engine (20.10 or later)')
    }
    if (about.cgroupDriver !== 'cgroupfs' && [...config.queues.values()].some(q => q.cgroupParent === 'torque')) {
      add('FAIL', 'engine cgroup driver', `${about.cgroupDriver}, but a queue has cgroupParent: torque`, 'run dockerd with --exec-opt native.cgroupdriver=cgroupfs')
    }
    // Podman has no daemon holding containers: each has its own monitor (conmon).
    if (!about.liveRestore && about.product === 'Docker') {
      add('warn', 'engine live-restore', 'off: restarting dockerd kills every running job', 'set "live-restore": true in /etc/docker/daemon.json')
    }
    checkDisk('engine data root', about.dataRoot, add)
    await checkRuntimes(config, engine, about, add)
    for (const [name, queue] of config.queues) {
      const present = await engine.hasImage(queue.image)
      if (present) add('ok', `queue ${name} image`, `${queue.image} is on this node`)
      else if (queue.pull === 'never') add('FAIL', `queue ${name} image`, `${queue.image} is missing and pull is never`, `cbatch images pull --queue ${name}`)
      else add('warn', `queue ${name} image`, `${queue.image} is not on this node: the first job pulls it`, `cbatch images pull --queue ${name}`)
    }
  } catch (err) {
    add('FAIL', 'engine', `not usable at ${config.engine.socket}: ${(err as Error).message}`, config.engine.kind === 'podman' ? 'start `podman system service --time=0 unix://SOCKET` as root, or fix engine.socket' : 'start dockerd (systemctl start docker), or fix engine.socket')
  }
  // Each message says what to change; the node log's lines go to syslog meanwhile (lib/log.ts).
  const unsafe = checkHostPaths(config)
  for (const issue of unsafe) add('FAIL', issue.path, issue.message, 'keep it root\'s, writable by root alone, in directories only root may write to')
  const judged = new Set(unsafe.map(i => i.path))
  for (const [path, file] of [['log.file', config.log.file], ['accounting.file', config.accounting.file]] as const) {
    if (file && !judged.has(path)) add('ok', path, `${file}: root's alone`)
  }
  for (const [name, queue] of config.queues) {
    const path = `queues.${name}.scratch.base`
    if (queue.scratch && !judged.has(path)) {
      if (existsSync(queue.scratch.base)) checkDisk(path, queue.scratch.base, add)
      else add('ok', path, `${queue.scratch.base}: made by the first job, where only root may make it`)
    }
  }
  return findings
}

type Add = (verdict: Verdict, what: string, detail: string, fix?: string) => void

/** The engine's runtimes with their versions, and each queue's runtime among them. */
async function checkRuntimes(config: Config, engine: ContainerEngine, about: EngineDescription, add: Add): Promise<void> {
  for (const r of await runtimeVersions(about.runtimes)) {
    const program = [r.path, ...r.args].join(' ')
    const which = `${r.name === about.defaultRuntime ? ' (default)' : ''}`
    if (r.version) add('ok', `runtime ${r.name}`, `${program}${which}: ${r.version}`)
    else add('warn', `runtime ${r.name}`, `${program}${which}: no version (${r.error})`, 'check the runtime the engine registered under this name')
  }
  let issues
  try {
    issues = await missingRuntimes(config, engine)
  } catch (err) {
    add('warn', 'queue runtimes', `not checked: ${(err as Error).message}`, 'run cbatch doctor again')
    return
  }
  for (const issue of issues) add('FAIL', 'config', describeIssue(config.file, issue), 'do as the message says, or change that line')
}

/** pbs_mom's permission check, and that each hook is cbatch's with its bundle and a cache that fits. */
function checkHooks(momPriv: string, add: Add): void {
  for (const { momPrivFile: hook, required } of WRAPPED_HOOKS) {
    const file = join(momPriv, hook)
    let stat
    try {
      stat = lstatSync(file)
    } catch {
      if (required) add('FAIL', `hook ${hook}`, `${file} is missing`, './install.sh')
      else add('warn', `hook ${hook}`, `${file} is missing: a node that cannot run jobs keeps taking them`, './install.sh (without --no-node-check)')
      continue
    }
    const ours = stat.isFile() && /^# cbatch .* hook for pbs_mom/m.test(readFileSync(file, 'utf8'))
    if (!ours) add('FAIL', `hook ${hook}`, `${file} is not cbatch's`, './install.sh (the site\'s own is kept as .cbatch-orig)')
    else if (stat.uid !== 0 || (stat.mode & 0o500) !== 0o500 || (stat.mode & 0o022)) {
      add('FAIL', `hook ${hook}`, `${file}: owner ${stat.uid}, mode ${(stat.mode & 0o7777).toString(8)}: pbs_mom refuses it (-1)`, `chown root: ${file}; chmod 755 ${file}`)
    } else add('ok', `hook ${hook}`, `${file}, root's, mode ${(stat.mode & 0o777).toString(8)}`)
  }
  const bundles = join(momPriv, 'cbatch.d')
  for (const bundle of BUNDLES.map(b => `${b}.cjs`)) {
    const file = join(bundles, bundle)
    if (!existsSync(file)) {
      add('FAIL', `bundle ${bundle}`, `${file} is missing`, './install.sh')
      continue
    }
    try {
      assertRootControlled(file, 'hook bundle') // root runs it: the loader refuses it otherwise
    } catch (err) {
      add('FAIL', `bundle ${bundle}`, (err as Error).message, './install.sh')
      continue
    }
    const cache = `${file}.cache`
    if (!existsSync(cache)) continue // written by the hook's first successful run
    const digest = createHash('sha256').update(readFileSync(file)).digest()
    if (!readFileSync(cache).subarray(0, 32).equals(digest)) {
      add('warn', `code cache ${bundle}`, 'made for another bundle: the next run rewrites it', `rm ${cache}`)
    }
  }
}

/**
 * The config the installed hooks read is the one their wrappers name (install.sh
 * --config-dir binds it): doctor's verdicts hold for the hooks only if it is this one.
 */
function checkHooksConfig(momPriv: string, checked: string, add: Add): void {
  const elsewhere = new Map<string, string[]>()
  for (const { momPrivFile: hook } of WRAPPED_HOOKS) {
    let text
    try {
      text = readFileSync(join(momPriv, hook), 'utf8')
    } catch {
      continue // said by checkHooks
    }
    const bound = /^exec .* CBATCH_CONFIG='([^']*)'/m.exec(text)?.[1]
    if (bound === undefined || !/^# cbatch .* hook for pbs_mom/m.test(text)) continue // not cbatch's: said by checkHooks
    if (bound !== checked) elsewhere.set(bound, [...elsewhere.get(bound) ?? [], hook])
  }
  if (!elsewhere.size) {
    add('ok', 'hooks\' config', `the installed hooks read ${checked}`)
    return
  }
  for (const [bound, hooks] of elsewhere) {
    add('FAIL', 'hooks\' config', `${hooks.join(', ')} read ${bound}, not ${checked} (the config checked here)`,
      `cbatch doctor --config ${bound} to check theirs, or ./install.sh --config-dir ${dirname(checked)} to have them read this one`)
  }
}

/** `$job_starter` and `$job_starter_run_privileged true`, once each, and pbs_mom having read them. */
function checkMomConfig(momPriv: string, mom: Mom | undefined, add: Add): void {
  const file = join(momPriv, 'config')
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    add('FAIL', 'mom_priv/config', `${file} is missing`, './install.sh')
    return
  }
  const lines = text.split('\n').map(l => l.trim())
  const starters = lines.filter(l => /^\$job_starter\s/.test(l))
  const privileged = lines.filter(l => /^\$job_starter_run_privileged\s/.test(l))
  const expected = join(momPriv, 'jobstarter')
  if (starters.length !== 1 || starters[0].split(/\s+/)[1] !== expected) {
    add('FAIL', '$job_starter', `${starters.length} line(s) in ${file}${starters.length ? `: ${starters.join(' | ')}` : ''}`, `exactly one line: $job_starter ${expected} (./install.sh)`)
  } else add('ok', '$job_starter', expected)
  if (privileged.length !== 1 || !/\strue(\s|$)/i.test(privileged[0])) {
    add('FAIL', '$job_starter_run_privileged', `${privileged.length} line(s) in ${file}`, 'exactly one line: $job_starter_run_privileged true')
  } else add('ok', '$job_starter_run_privileged', 'true')
  // An installed node check runs only if mom_priv/config names it (or the site's own runs it).
  const nodecheck = join(momPriv, 'cbatch-nodecheck')
  const checks = lines.filter(l => /^\$node_check_script\s/.test(l)).map(l => l.split(/\s+/)[1])
  if (!existsSync(nodecheck)) {
    // not installed: said by checkHooks
  } else if (checks.includes(nodecheck)) add('ok', '$node_check_script', nodecheck)
  else if (checks.length) add('warn', '$node_check_script', `${checks.join(' | ')}, the site's: cbatch's node check runs only if that runs ${nodecheck}`, `have it run ${nodecheck} and pass on its ERROR lines`)
  else add('warn', '$node_check_script', `none in ${file}: ${nodecheck} never runs, so a node that cannot run jobs keeps taking them`, `add the line: $node_check_script ${nodecheck} (./install.sh does)`)
  if (mom === undefined) add('warn', 'pbs_mom', `none runs here for ${dirname(momPriv)}`, 'start pbs_mom')
  else if (statSync(file).mtimeMs > mom.started) add('warn', 'pbs_mom', `started before ${file} last changed`, 'kill -HUP $(pgrep -x pbs_mom)')
  else add('ok', 'pbs_mom', 'running, with the current mom_priv/config')
}

/**
 * pbs_mom sets a job's vmem and mem as hard limits on the job starter too; only a root with
 * CAP_SYS_RESOURCE can lift them for it (hooks/wrapper.ts). Without it, small ones refuse jobs.
 * The starter has pbs_mom's capabilities, not this command's: pbs_mom's are read when it runs.
 */
function checkLiftingLimits(mom: Mom | undefined, add: Add): void {
  const capable = (pid: number | 'self') => {
    const effective = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
    return !!effective && ((BigInt(`0x${effective}`) >> 24n) & 1n) === 1n
  }
  let whose: string, has: boolean
  try {
    if (mom === undefined) throw new Error('no pbs_mom')
    has = capable(mom.pid)
    whose = `pbs_mom (pid ${mom.pid})`
  } catch {
    has = capable('self')
    whose = 'root here (no pbs_mom of this PBS_HOME runs: judged by this command\'s own, which may not be pbs_mom\'s)'
  }
  if (has) add('ok', 'CAP_SYS_RESOURCE', `${whose} may lift the limits pbs_mom sets on the job starter`)
  else {
    add('warn', 'CAP_SYS_RESOURCE', `${whose} lacks it: jobs asking for vmem under ${STARTER_NEEDS.vmem / 1024} MiB or mem under ${STARTER_NEEDS.mem / 1024} MiB are refused (their limit would hold the job starter)`,
      'run pbs_mom with CAP_SYS_RESOURCE (it has it as root outside restricted containers)')
  }
}

/**
 * pbs_mom logs a job's secret cookie (the only proof of whose job a TM task is) when a TM
 * request brings a wrong one: its log directory must be root's alone (install.sh makes it
 * 0700; TORQUE's own install leaves it 0755).
 */
function checkMomLogs(pbsHome: string, add: Add): void {
  const dir = join(pbsHome, 'mom_logs')
  let stat
  try {
    stat = statSync(dir)
  } catch {
    add('ok', 'mom_logs', `${dir}: none, pbs_mom keeps no log here`)
    return
  }
  const mode = (stat.mode & 0o7777).toString(8)
  if (!stat.isDirectory()) add('FAIL', 'mom_logs', `${dir} is not a directory`, `make it a directory root's alone: mkdir -m 0700 ${dir}`)
  else if (stat.uid !== 0) add('FAIL', 'mom_logs', `${dir}: owner ${stat.uid}, who may read the jobs' cookies pbs_mom logs there`, `chown root: ${dir}; chmod 0700 ${dir}`)
  else if (stat.mode & 0o077) add('FAIL', 'mom_logs', `${dir}: mode ${mode}, so other users may read the jobs' cookies pbs_mom logs there`, `chmod 0700 ${dir}`)
  else add('ok', 'mom_logs', `${dir}: root's alone, mode ${mode}`)
}

/** A pbs_mom: its pid, and when it started (ms since the epoch). */
interface Mom {
  pid: number
  started: number
}

/**
 * The pbs_mom of this mom_priv, if it runs. Several moms may run on one host (multi-mom):
 * each names its PBS_HOME with -d, else it has TORQUE's default.
 */
function findMom(momPriv: string): Mom | undefined {
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'pbs_mom') continue
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      const home = argv.find((_, i) => argv[i - 1] === '-d') ?? argv.find(a => a.startsWith('-d') && a.length > 2)?.slice(2) ?? DEFAULT_PBS_HOME
      if (normalize(join(home, 'mom_priv')) === normalize(momPriv)) return { pid: Number(pid), started: statSync(`/proc/${pid}`).mtimeMs }
    } catch {
      // gone meanwhile
    }
  }
  return undefined
}

/** The wrappers' shell must not load a dynamic linker: LD_PRELOAD of a job would run as root. */
function checkBusybox(add: Add): void {
  let dynamic = true
  try {
    execFileSync('ldd', ['/bin/busybox'], { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } })
  } catch (err) {
    dynamic = !existsSync('/bin/busybox') || (err as { status?: number }).status === undefined
  }
  if (dynamic) add('FAIL', '/bin/busybox', 'missing or dynamically linked', 'apt-get install busybox-static')
  else add('ok', '/bin/busybox', 'statically linked')
}

function checkDisk(what: string, dir: string, add: Add): void {
  try {
    const fs = statfsSync(dir)
    const free = fs.bavail * fs.bsize
    const detail = `${dir}: ${(free / 1024 ** 3).toFixed(1)} GiB free of ${(fs.blocks * fs.bsize / 1024 ** 3).toFixed(1)} GiB`
    if (free < LOW_DISK.bytes && free < fs.blocks * fs.bsize * LOW_DISK.fraction) add('warn', what, `${detail}: low`, 'cbatch images prune, or free space')
    else add('ok', what, detail)
  } catch (err) {
    add('warn', what, `${dir}: ${(err as Error).message}`)
  }
}
