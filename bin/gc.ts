// cbatch gc: removes the containers of jobs this pbs_mom no longer knows (lib/job/gc.ts).
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../lib/policy/config.ts'
import { openEngine } from '../lib/engine/open.ts'
import { LABEL } from '../lib/engine/labels.ts'
import type { JobContainer } from '../lib/engine/engine.ts'
import { UsageError } from '../lib/errors.ts'
import { printable } from '../lib/format.ts'
import { collectOrphans } from '../lib/job/gc.ts'
import { pbsMom } from '../lib/torque/mom.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { CONFIG, configPath, PBS_HOME } from './options.ts'

const GC_OPTIONS = {
  config: CONFIG, 'pbs-home': PBS_HOME,
  grace: { type: 'string', value: 'SECONDS', help: 'leave containers younger than this (default: gc.graceSeconds)' },
  'dry-run': { type: 'boolean', help: 'only list what would be removed' },
} as const

export const gcCommand = defineCommand({
  name: 'gc', summary: 'remove containers (and cbatch\'s files) of jobs this pbs_mom no longer knows, never another mom\'s; safe from cron',
  synopsis: '[options]',
  description: `Removes the job containers this node's pbs_mom made (label cbatch.mom) whose job it no longer
ows (no .JB or .JC in mom_priv/jobs, on two looks), with their account files and scratch.
ntainers an older cbatch made without that label are named and left alone.`,
  options: GC_OPTIONS, rootOnly: true,
  examples: ['cbatch gc --dry-run', '*/15 * * * * /usr/local/sbin/cbatch gc     (crontab)'],
  run: gc,
})

async function gc(_: string[], values: OptionValues<typeof GC_OPTIONS>): Promise<number> {
  const config = await loadConfig(configPath(values))
  const grace = values.grace === undefined ? config.gc.graceSeconds : Number(values.grace)
  if (!(grace >= 0)) throw new UsageError(`--grace ${values.grace}: expected seconds`)
  const batch = pbsMom(join(values['pbs-home'] ?? config.torque.home, 'mom_priv'))
  if (!existsSync(batch.scriptDir)) throw new UsageError(`${batch.scriptDir} does not exist: is this pbs_mom's PBS_HOME? (--pbs-home)`)
  const engine = openEngine(config.engine)
  const unlabelled = (c: JobContainer) => process.stdout.write(`${printable(`left alone ${c.name} (job ${c.labels[LABEL.job]}, ${c.state}): `
    + `no ${LABEL.mom} label says which pbs_mom made it (an older cbatch's); remove it by hand once its job is gone`)}\n`)
  const removed = await collectOrphans(engine, { batch, graceSeconds: grace, dryRun: values['dry-run'], onUnlabelled: unlabelled })
  for (const c of removed) process.stdout.write(`${printable(`${values['dry-run'] ? 'would remove' : 'removed'} ${c.name} (job ${c.labels[LABEL.job]}, ${c.state})`)}\n`)
  return 0
}
