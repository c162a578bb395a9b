// pbs_mom's epilogue (root, mother superior): remove the job's container whatever its
// state, and tell the job owner in the job's output. pbs_mom only logs the exit code.
import { cleanupJob } from '../lib/lifecycle.ts'
import { parseEpilogueArgs } from '../lib/torque.ts'
import { engineFor, runHook } from './run.ts'

const args = process.argv.slice(2)
void runHook('epilogue', () => args[0], { abort: 1, requeue: 2, internal: 2 }, async ({ config, log }) => {
  const facts = parseEpilogueArgs(args)
  const { removed } = await cleanupJob(facts, engineFor(config))
  for (const c of removed) {
    const line = `cbatch: job ${facts.jobId} ran in ${c.image}; exit ${facts.exitStatus}${c.oomKilled ? ', killed: out of memory' : ''}; container removed`
    process.stdout.write(`${line}\n`)
    log.info(`removed ${c.name} (${c.state}, container exit ${c.exitCode})`)
  }
  return 0
})
