// pbs_mom's $job_starter (root, with $job_starter_run_privileged true):
// argv = [starter, shell, ...rest], stdin = the job's script line, stdout/stderr = .OU/.ER.
// Its exit status is the job's; 125 means cbatch itself could not run the job.
import { containerForShell, runInContainer, runNatively } from '../lib/exec.ts'
import { lookupUser } from '../lib/identity.ts'
import { starterFacts } from '../lib/torque.ts'
import { UsageError } from '../lib/errors.ts'
import { Engine } from '../lib/engine.ts'
import { runHook } from './run.ts'

const shellArgv = process.argv.slice(2)
void runHook('jobstarter', env => env.PBS_JOBID, { abort: 125, requeue: 125, internal: 125 }, async ({ env, config, log }) => {
  if (!shellArgv.length) throw new UsageError('job starter: no job shell given')
  const facts = starterFacts(env)
  if (!config.queues.has(facts.queue)) return runNatively({ facts, owner: await lookupUser(facts.user), shellArgv, env })
  const engine = Engine.fromConfig(config.engine)
  const container = await containerForShell(engine, facts.jobId)
  const status = await runInContainer(engine, container, { facts, shellArgv, env })
  log.info(`job shell exited ${status}`)
  return status
})
