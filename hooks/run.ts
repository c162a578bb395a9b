// What the three hook entry points share: where their environment comes from, and how
// errors become pbs_mom exit codes. No job logic lives here.
import { readFileSync } from 'node:fs'
import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../lib/config.ts'
import { CbatchError, type Disposition } from '../lib/errors.ts'
import { nodeLogger, type Logger } from '../lib/log.ts'

/**
 * The environment pbs_mom gave the hook. The installed hook is a /bin/sh wrapper that
 * starts node with an empty environment (a job owner's NODE_OPTIONS must never reach a
 * root process) and hands the real one over on a file descriptor, NUL-separated and base64.
 */
export function hookEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const fd = env.CBATCH_ENV_FD
  if (!fd) return env
  const pairs = Buffer.from(readFileSync(Number(fd), 'utf8'), 'base64').toString('utf8').split('\0')
  const result: NodeJS.ProcessEnv = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq > 0) result[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return result
}

function configPath(env: NodeJS.ProcessEnv): string {
  return env.CBATCH_CONFIG || DEFAULT_CONFIG_PATH
}

export interface HookContext {
  env: NodeJS.ProcessEnv
  config: Config
  log: Logger
}

/** Exit codes by disposition; pbs_mom reads them differently per hook. */
export type ExitCodes = Record<Disposition | 'internal', number>

/**
 * Runs a hook's main with the config loaded and every failure turned into one line for
 * the job owner (stderr, the job's .ER), a detailed line in the node log, and `codes`.
 */
export async function runHook(name: string, jobIdFrom: (env: NodeJS.ProcessEnv) => string | undefined, codes: ExitCodes,
  main: (ctx: HookContext) => Promise<number>): Promise<never> {
  let env: NodeJS.ProcessEnv = {}
  let log = nodeLogger(name, '-', undefined, process.env)
  let status: number
  try {
    env = hookEnvironment()
    const jobId = jobIdFrom(env) ?? '-'
    log = nodeLogger(name, jobId, undefined, env)
    const config = loadConfig(configPath(env))
    log = nodeLogger(name, jobId, config.log.file, env)
    status = await main({ env, config, log })
  } catch (err) {
    if (err instanceof CbatchError) {
      process.stderr.write(`cbatch: ${err.userMessage}\n`)
      log.error(`${err.name}: ${err.message}${causeOf(err)}`)
      status = codes[err.disposition]
    } else {
      process.stderr.write(`cbatch: internal error in ${name}: ${(err as Error)?.message ?? err}\n`)
      log.error(`internal error: ${(err as Error)?.stack ?? err}`)
      status = codes.internal
    }
  }
  process.exit(status)
}

function causeOf(err: Error): string {
  const cause = err.cause as Error | undefined
  return cause?.message && !err.message.includes(cause.message) ? ` (cause: ${cause.message})` : ''
}
