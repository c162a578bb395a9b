// pbs_mom's epilogue (root, mother superior) and epilogue.parallel (sister nodes): account
// for what the job used on this node, kill its container's processes and leave the container's
// removal to a detached remover (hooks/remover.ts), and on the
// mother superior tell the job owner in the job's output (stdout is .OU; a sister's is
// closed, and it is not told the job's exit status). pbs_mom only logs the exit code.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { appendRecord, summaryLine } from '../lib/job/accounting.ts'
import { cleanupJob } from '../lib/job/epilogue.ts'
import { atLineStart } from '../lib/job/output.ts'
import { clearRefusal, refusalOf } from '../lib/job/refusal.ts'
import { accountsDir, removeAccountFiles } from '../lib/host/accounts.ts'
import { killContainerProcesses, removeEngineLeftovers } from '../lib/torque/cgroups.ts'
import { removeScratchDir } from '../lib/host/scratch.ts'
import { parseEpilogueArgs } from '../lib/torque/contract.ts'
import { collectTaskPlaces } from '../lib/node/tasks.ts'
import { runHook } from './run.ts'

const args = process.argv.slice(2)

/** The container's removal after this epilogue (hooks/remover.ts): its own session, only the config path of its environment. */
function startRemover(id: string, momPriv: string): void {
  const { CBATCH_CACHE_DIR: bundles, CBATCH_CONFIG: config } = process.env
  spawn(process.execPath, [join(bundles!, 'load.cjs'), 'remover', id, args[0] ?? '-', momPriv], { detached: true, stdio: 'ignore', cwd: '/', env: { CBATCH_CONFIG: config } })
    .on('error', () => undefined) // cbatch gc removes the container
    .unref()
}
const hook = process.env.CBATCH_HOOK === 'epilogue.parallel' ? 'epilogue.parallel' : 'epilogue'
const sister = hook === 'epilogue.parallel'
void runHook(hook, () => args[0], async ({ env, batch, config, log, engine, metrics }) => {
  const facts = parseEpilogueArgs(args)
  // What killed starters of this job (or of any ended one) left in their places (node/tasks.ts).
  try {
    collectTaskPlaces()
  } catch (err) {
    log.error(`task places: ${(err as Error).message}`)
  }
  const policy = config.queues.get(facts.queue)
  const underTorque = policy?.cgroupParent === 'torque'
  // Run by a sister's guard rather than pbs_mom (its environment is root's either way).
  const onlyContainer = sister ? env.CBATCH_SISTER_CONTAINER : undefined
  // The scratch base is the queue's, from the config: never a path a label names.
  const scratchBase = policy?.scratch?.base
  // Under TORQUE's cgroups pbs_mom removes the job's cgroup once the epilogue returns: the
  // container's, inside it, must be gone by then, so the engine stops it here.
  const removeLater = underTorque ? undefined : (id: string) => startRemover(id, batch.stateDir)
  const cleaned = await cleanupJob({ ...facts, momPriv: batch.stateDir, exitStatus: sister ? undefined : facts.exitStatus, onlyContainer, scratchBase, removeLater }, engine()).catch(err => {
    // A container that outlives its job would keep pbs_mom from removing the job's cgroup.
    // A guard's run (onlyContainer) kills that container's processes alone, never a later try's.
    if (underTorque) log.error(`engine unusable: killed ${killContainerProcesses(facts.jobId, undefined, onlyContainer === undefined ? undefined : engine().cgroupNames(onlyContainer))} processes of the job's container`)
    throw err
  })
  // After a guard's run, only if its container was there: a later try's may be starting.
  if (underTorque && (cleaned || onlyContainer === undefined)) removeEngineLeftovers(facts.jobId).forEach(dir => log.info(`removed ${dir}`))
  if (!cleaned) return 0
  const { record, scratchDir } = cleaned
  metrics.count('cbatch_jobs_ended_total', { queue: record.queue, node: sister ? 'sister' : 'mother' })
  if (record.oomKilled) metrics.count('cbatch_oom_kills_total', { queue: record.queue })
  removeAccountFiles(accountsDir(batch.stateDir, record.container))
  if (config.accounting.file) appendRecord(config.accounting.file, record)
  // On a line of its own, after a last line of the job's that has no newline.
  if (!sister && policy?.summaryLine !== false) process.stdout.write(`${atLineStart() ? '' : '\n'}${summaryLine(record)}\n`)
  log.info(`removed ${record.container}`, { record })
  // Whatever the job left in its scratch directory cannot cost it its accounting line.
  if (scratchDir) await removeScratchDir(scratchDir).catch(err => log.error(`${err.message}`))
  return 0
}, {
  // A job its prologue refused never had a container: its .ER already says why.
  // A sister's guard (CBATCH_SISTER_CONTAINER) ends a try that had a container: a refusal
  // recorded now is a later try's, for its starters to read.
  early: ({ batch, env }) => {
    if (sister && env.CBATCH_SISTER_CONTAINER) return undefined
    if (!args[0] || refusalOf(batch, args[0]) === undefined) return undefined
    clearRefusal(batch, args[0])
    return 0
  },
})
