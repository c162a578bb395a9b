// pbs_mom's $job_starter (root, with $job_starter_run_privileged true), for the job shell
// (argv = [starter, shell, ...rest], stdin = the job's script line) and for every TM task
// (argv = [starter, task argv...], stdin /dev/null); stdout/stderr = the job's output.
// Its exit status is the job's; 125 means cbatch itself could not run the job.
// Its environment is the job's: whose job it is comes from pbs_mom's job file.
import { checkClaims, containerForShell, runInContainer, runNatively } from '../lib/job/starter.ts'
import { resizeSister } from '../lib/job/share.ts'
import { lookupUser } from '../lib/host/identity.ts'
import { jobLimits } from '../lib/torque/rlimits.ts'
import { refusalOf } from '../lib/job/refusal.ts'
import { rejoinJobMemoryCgroup } from '../lib/torque/cgroups.ts'
import { CANNOT_RUN_EXIT, starterFacts } from '../lib/torque/contract.ts'
import { enteringEnvironment } from '../lib/policy/environment.ts'
import { UsageError } from '../lib/errors.ts'
import { claimTaskPlace, taskLimit } from '../lib/node/tasks.ts'
import { LABEL } from '../lib/engine/labels.ts'
import { runHook } from './run.ts'

const argv = process.argv.slice(2)
/** cbatch did not run the job: the reason is in its .ER. */
const REFUSED = CANNOT_RUN_EXIT.jobstarter
void runHook('jobstarter', env => env.PBS_JOBID, async ({ env, batch, config, log, engine: engineOf, started }) => {
  if (!argv.length) throw new UsageError('job starter: no job shell or task given')
  const facts = starterFacts(env)
  const job = batch.claimedJob(facts.jobId, facts.cookie)
  checkClaims(facts, job)
  const request = { facts, job, argv, env, started }
  if (!config.queues.has(job.queue)) {
    rejoinJobMemoryCgroup(process.env.CBATCH_JOB_MEMCG)
    return runNatively({ ...request, owner: await lookupUser(job.user, job.group), limits: jobLimits() })
  }
  const policy = config.queues.get(job.queue)!
  const engine = engineOf()
  const container = await containerForShell(engine, job.jobId, batch.stateDir)
  // This node's number is root's label: the job's processors here may raise maxTasks.
  const node = container.labels[LABEL.node]
  const release = claimTaskPlace(job.jobId, batch.stateDir, taskLimit(policy.maxTasks, job, node ? Number(node) : undefined))
  try {
    // A sister's container made before its share was known gets it now, before the task runs.
    const resized = await resizeSister(job, container, config, engine)
    if (resized) log.info('container sized to this node\'s share', { limits: resized })
    const status = await runInContainer(engine, container, { ...request, env: enteringEnvironment(env, policy.environment) })
    log.info(`${facts.task === 1 ? 'job shell' : `task ${facts.task}`} exited ${status}`)
    return status
  } finally {
    release()
  }
}, {
  // The prologue refused the job and wrote why into its .ER: nothing runs. A task says why
  // too: on a sister node, the prologue.parallel that refused it printed into /dev/null.
  early: ({ batch, env }) => {
    const reason = env.PBS_JOBID ? refusalOf(batch, env.PBS_JOBID) : undefined
    if (reason === undefined) return undefined
    // Said only to the job's own processes: the reason may name its owner's paths.
    try {
      batch.claimedJob(env.PBS_JOBID!, env.PBS_JOBCOOKIE)
    } catch {
      return REFUSED
    }
    if (env.PBS_TASKNUM !== '1') process.stderr.write(`cbatch: ${reason}\n`)
    return REFUSED
  },
})
