// pbs_mom's prologue (root, mother superior): make the job's container.
// Exit 0: the job runs; 1: the job is aborted; 2: the job is requeued.
import { prepareJob } from '../lib/lifecycle.ts'
import { parsePrologueArgs } from '../lib/torque.ts'
import { engineFor, runHook } from './run.ts'

const args = process.argv.slice(2)
void runHook('prologue', () => args[0], { abort: 1, requeue: 2, internal: 2 }, async ({ env, config, log }) => {
  const facts = parsePrologueArgs(args)
  const prepared = await prepareJob(facts, config, engineFor(config), env)
  if (prepared.kind === 'native') {
    log.info(`queue ${facts.queue} is not managed by cbatch: job runs natively`)
  } else {
    log.info(`container ${prepared.name} (${prepared.id.slice(0, 12)}) started from ${prepared.image} (${prepared.imageSource})`
      + (prepared.replaced ? `, replacing ${prepared.replaced} left by an earlier run` : ''))
  }
  return 0
})
