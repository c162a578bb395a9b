// What more than one CLI command takes: --config (and which config that means when it is
// not given), --pbs-home, --json.
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DEFAULT_CONFIG_PATH } from '../lib/policy/config.ts'
import { UsageError } from '../lib/errors.ts'

export const CONFIG = { type: 'string', value: 'FILE', complete: 'file', help: `cbatch.yaml (default: $CBATCH_CONFIG, else ${DEFAULT_CONFIG_PATH})` } as const
export const PBS_HOME = { type: 'string', value: 'DIR', complete: 'directory', help: 'PBS_HOME of this node\'s pbs_mom (default: torque.home of the config)' } as const
export const JSON_OUT = { type: 'boolean', help: 'as JSON' } as const
/** ps and doctor: about this node's pbs_mom. */
export const NODE_OPTIONS = { config: CONFIG, 'pbs-home': PBS_HOME, json: JSON_OUT } as const

/**
 * The config a command reads: --config, else the one install.sh installed the CLI with
 * (CBATCH_CONFIG, set by the `cbatch` it put on PATH), else the default; on a machine where only
 * the demo ran (./install.sh --demo) there is none, and the demo's own is used, saying so.
 */
export function configPath(values: { config?: string }, env = process.env): string {
  if (values.config) return values.config
  if (env.CBATCH_CONFIG) return env.CBATCH_CONFIG
  if (existsSync(DEFAULT_CONFIG_PATH)) return DEFAULT_CONFIG_PATH
  const demo = resolve(dirname(process.argv[1]), '../config/cbatch.yaml')
  if (!existsSync(demo)) throw new UsageError(`no config at ${DEFAULT_CONFIG_PATH}: pass --config FILE (cbatch.yaml; the repository has config/cbatch.yaml)`)
  if (!demoNoted) process.stderr.write(`cbatch: no ${DEFAULT_CONFIG_PATH}; using the demo's ${demo} (--config FILE to choose)\n`)
  demoNoted = true
  return demo
}
let demoNoted = false
