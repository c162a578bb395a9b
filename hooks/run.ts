// What the hook entry points share (hooks/prologue.ts, jobstarter.ts, epilogue.ts, nodecheck.ts): where their
// environment comes from, and how errors become pbs_mom exit codes. No job logic lives here.
import { closeSync, readFileSync } from 'node:fs'
import { loadConfig, type Config } from '../lib/policy/config.ts'
import { CbatchError, describeIssue, UsageError, type Disposition } from '../lib/errors.ts'
import { FAILURE_EXITS } from '../lib/torque/contract.ts'
import { pbsMom, type BatchNode } from '../lib/torque/mom.ts'
import { nodeLogger, type Logger } from '../lib/log.ts'
import type { Engine } from '../lib/engine/engine.ts'
import { openEngine } from '../lib/engine/open.ts'
import { flushMetrics, MetricsBatch } from '../lib/node/metrics.ts'
import { LABEL, labelOf } from '../lib/engine/labels.ts'
import { isThisMom } from '../lib/job/container.ts'

/**
 * The hook's own settings and the environment pbs_mom gave it. The installed hook is a
 * busybox wrapper (hooks/wrapper.ts) that starts node with an empty environment holding
 * only what root wrote into the wrapper (the config path, this pbs_mom's mom_priv, the
 * limits it lifted), and hands pbs_mom's environment over on a file descriptor,
 * NUL-separated and base64. For the job starter that environment is the job's: data to
 * check, never settings.
 */
export interface HookStart {
  configPath: string
  momPriv: string
  /** Where the loader (hooks/load.ts) keeps what it derives: beside the bundles, root's. */
  cacheDir?: string
  env: NodeJS.ProcessEnv
}

export function hookStart(own: NodeJS.ProcessEnv = process.env): HookStart {
  const { CBATCH_ENV_FD: fd, CBATCH_CONFIG: configPath, CBATCH_MOM_PRIV: momPriv, CBATCH_CACHE_DIR: cacheDir } = own
  if (!fd || !configPath || !momPriv) throw new UsageError('cbatch hooks must be started through their installed wrapper')
  const pairs = Buffer.from(readFileSync(Number(fd), 'utf8'), 'base64').toString('utf8').split('\0')
  closeSync(Number(fd)) // not to be inherited by a job the starter runs natively
  const env: NodeJS.ProcessEnv = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return { configPath, momPriv, cacheDir, env }
}

/** What a hook's steps before its main know: the environment, and the pbs_mom that runs it. */
export interface HookBasis {
  /** pbs_mom's environment for the hook: for the job starter, the job's. */
  env: NodeJS.ProcessEnv
  /** The pbs_mom that runs the hook (its mom_priv is where the hook is installed). */
  batch: BatchNode
}

export interface HookContext extends HookBasis {
  config: Config
  log: Logger
  /** The config's engine; the hook's last log line says how long each of its calls took. */
  engine: () => Engine
  /** What the hook adds to the node's metrics (written when it ends, if the config asks). */
  metrics: MetricsBatch
  /** The hook's own work is done and what it runs has started (the job starter): its time is measured to here. */
  started: () => void
}

/** Steps of a hook around its main. */
export interface HookSteps {
  /** Before the config is read: a status ends the hook there (the starter of a refused job). */
  early?: (basis: HookBasis) => number | undefined
  /** When the hook fails for a reason that cannot pass (the prologue records the refusal). */
  onAbort?: (basis: HookBasis, err: CbatchError) => void
  /** When it fails at all, with the line said on stderr (the node check says it to pbs_mom too). */
  onFailure?: (message: string) => void
}

/**
 * Runs a hook's main with the config loaded and every failure turned into one line for
 * the job owner (stderr, the job's .ER), a detailed line in the node log, and the hook's exit
 * status for it (FAILURE_EXITS).
 */
export async function runHook(name: keyof typeof FAILURE_EXITS, jobIdFrom: (env: NodeJS.ProcessEnv) => string | undefined,
  main: (ctx: HookContext) => Promise<number>, steps: HookSteps = {}): Promise<never> {
  const codes = FAILURE_EXITS[name]
  let log = nodeLogger(name, '-', undefined)
  let basis: HookBasis | undefined
  let status: number
  const calls: { call: string; ms: number; failed?: boolean }[] = []
  const began = performance.now()
  const inherited = childCpuMs()
  const metrics = new MetricsBatch()
  let textfile: string | undefined
  let outcome: Disposition | 'ok' = 'ok'
  // The hook's own time: to the end, or, for the job starter, to the start of the job it runs.
  let timed = false
  const time = () => {
    if (timed || !textfile) return
    timed = true
    metrics.observe('cbatch_hook_duration_seconds', { hook: name }, Math.round(performance.now() - began) / 1000)
  }
  const started = () => {
    time()
    if (textfile) flushMetrics(metrics, textfile)
  }
  try {
    const { configPath, momPriv, cacheDir, env } = hookStart()
    const batch = pbsMom(momPriv)
    basis = { env, batch }
    const early = steps.early?.(basis)
    if (early !== undefined) process.exit(early)
    let fresh = false
    const config = await loadConfig(configPath, { cacheDir, validated: () => (fresh = true) })
    textfile = config.metrics.textfile
    metrics.queues = [...config.queues.keys()]
    log = nodeLogger(name, jobIdFrom(env) ?? '-', config.log.file, config.log.syslog || undefined)
    // Obeyed, and said once per change of the file: by the hook that validated it (the next ones take the kept copy).
    if (fresh) for (const w of config.warnings) log.warn(`config warning: ${describeIssue(config.file, w)}`, { rule: w.rule })
    const engine = () => openEngine(config.engine, (call, ms, ok) => calls.push({ call, ms, ...(ok ? {} : { failed: true }) }))
    status = await main({ env, batch, config, log, engine, metrics, started })
    if (textfile && GAUGING.has(name)) {
      time()
      // An epilogue's own job is over though its container may still be ending (hooks/remover.ts).
      const ended = name.startsWith('epilogue') ? jobIdFrom(env) : undefined
      await countRunningJobs(metrics, engine(), batch.stateDir, ended).catch(err => log.error(`metrics: running jobs not counted: ${err.message}`))
    }
  } catch (err) {
    if (err instanceof CbatchError) {
      process.stderr.write(`cbatch: ${err.userMessage}\n`)
      steps.onFailure?.(err.userMessage)
      log.error(`${err.name}: ${err.message}${causeOf(err)}`)
      if (err.disposition === 'abort' && basis) steps.onAbort?.(basis, err)
      status = codes[err.disposition]
      outcome = err.disposition
    } else {
      process.stderr.write(`cbatch: internal error in ${name}: ${(err as Error)?.message ?? err}\n`)
      steps.onFailure?.(`internal error in ${name}: ${(err as Error)?.message ?? err}`)
      log.error(`internal error: ${(err as Error)?.stack ?? err}`)
      status = codes.internal
      outcome = 'requeue'
    }
  }
  const ms = Math.round(performance.now() - began)
  if (calls.length) log.info(`exit ${status}`, { ms, cpuMs: cpuMs(inherited), engineMs: calls.reduce((sum, c) => sum + c.ms, 0), calls })
  if (textfile) {
    time()
    if (name.startsWith('prologue')) metrics.count('cbatch_prologue_outcomes_total', { hook: name, outcome })
    flushMetrics(metrics, textfile)
  }
  process.exit(status)
}

/**
 * CPU the hook has used, its own and that of the children it waited for (setpriv, the
 * owner's path resolver), in ms: what a job costs the node, where `ms` for the job starter
 * is mostly the job's own run time. `inherited`: the children's CPU this process had when
 * the hook began, not the hook's: pbs_mom runs the prologue from the process that then
 * execs the job starter, whose count of children's CPU so starts with the prologue's.
 */
function cpuMs(inherited: number): number {
  const { user, system } = process.cpuUsage()
  return Math.round((user + system) / 1000 + childCpuMs() - inherited)
}

/** CPU of the children this process waited for, before and after an exec, in ms: /proc/self/stat counts it in USER_HZ (100 on Linux). */
function childCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')
  return (Number(fields[13]) + Number(fields[14])) * 10 // cutime, cstime
}

/** The hooks that start or end jobs, and the node check, keep the running-jobs gauge true. */
const GAUGING = new Set(['prologue', 'prologue.parallel', 'epilogue', 'epilogue.parallel', 'nodecheck'])

/** This mom's running job containers (but `endedJob`'s), by queue; the config's other queues 0. */
async function countRunningJobs(metrics: MetricsBatch, engine: Engine, momPriv: string, endedJob?: string): Promise<void> {
  const running = new Map(metrics.queues.map(queue => [queue, 0]))
  for (const c of await engine.findByLabel(LABEL.job)) {
    if (c.state !== 'running' || !isThisMom(c.labels, momPriv) || labelOf(c.labels, LABEL.job) === endedJob) continue
    const queue = labelOf(c.labels, LABEL.queue) ?? ''
    running.set(queue, (running.get(queue) ?? 0) + 1)
  }
  metrics.set('cbatch_jobs_running', [...running].map(([queue, value]) => ({ labels: { queue }, value })))
}

function causeOf(err: Error): string {
  const cause = err.cause as Error | undefined
  return cause?.message && !err.message.includes(cause.message) ? ` (cause: ${cause.message})` : ''
}
