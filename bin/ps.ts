// cbatch ps: the job containers on this node (lib/node/jobs.ts).
import { join } from 'node:path'
import { loadConfig } from '../lib/policy/config.ts'
import { openEngine } from '../lib/engine/open.ts'
import { formatBytes, formatDuration, formatTable, printableJson } from '../lib/format.ts'
import { nodeJobs } from '../lib/node/jobs.ts'
import { pbsMom } from '../lib/torque/mom.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { configPath, NODE_OPTIONS } from './options.ts'

export const psCommand = defineCommand({
  name: 'ps', summary: 'the job containers on this node: job, owner, queue, image, state, age, CPU and memory now, their pbs_mom',
  synopsis: '[options]',
  options: NODE_OPTIONS, rootOnly: true,
  examples: ['cbatch ps', 'cbatch ps --json | jq \'.[] | select(.knownToMom == false)\''],
  run: (_, values) => ps(values),
})

async function ps(values: OptionValues<typeof NODE_OPTIONS>): Promise<number> {
  const config = await loadConfig(configPath(values))
  const jobs = await nodeJobs(openEngine(config.engine), pbsMom(join(values['pbs-home'] ?? config.torque.home, 'mom_priv')))
  if (values.json) {
    process.stdout.write(`${printableJson(jobs)}\n`)
    return 0
  }
  const rows = [['JOB', 'OWNER', 'QUEUE', 'IMAGE', 'STATE', 'AGE', 'CPU', 'MEMORY', 'MOM', 'JOB FILE'], ...jobs.map(j => [
    j.job, j.user, j.queue, j.image, j.state, formatDuration(j.ageSeconds),
    j.cpuSeconds === undefined ? '-' : `${j.cpuSeconds.toFixed(1)} s`,
    j.memoryBytes === undefined ? '-' : `${formatBytes(j.memoryBytes)}${j.memoryLimitBytes ? ` / ${formatBytes(j.memoryLimitBytes)}` : ''}`,
    j.mom ?? '(unlabelled)', j.knownToMom ? 'known' : 'unknown',
  ])]
  process.stdout.write(formatTable(rows))
  return 0
}
