// pbs_mom's prologue (root, mother superior) and prologue.parallel (sister nodes): make the
// job's container on this node, and clear away containers of jobs this pbs_mom no longer knows.
// Exit 0: the job runs, or was refused (the reason is in its .ER, and the starter will not
// run it: lib/job/refusal.ts); 2: the job is requeued (a fault that may pass). A sister's
// non-zero exit requeues the job and marks the node down until an admin clears it
// (docs/torque-contract.md): right for a node that cannot run containers (its engine is
// down), wrong for a job that cannot run, which would loop; such a job is refused with
// exit 0 on sisters too, and its tasks there say why (hooks/jobstarter.ts).
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { collectOrphans } from '../lib/job/gc.ts'
import { pullRecord } from '../lib/job/pull.ts'
import { countsAgainstNode, prepareJob, type Attempt } from '../lib/job/prologue.ts'
import { LABEL } from '../lib/engine/labels.ts'
import { CbatchError } from '../lib/errors.ts'
import { recordRefusal } from '../lib/job/refusal.ts'
import { clearRequeues, recordRequeue } from '../lib/node/requeues.ts'
import { parsePrologueArgs } from '../lib/torque/contract.ts'
import { jobContext } from '../lib/torque/job.ts'
import { guardSister } from '../lib/torque/guard.ts'
import { runHook } from './run.ts'

const args = process.argv.slice(2)

/** A pull that may outlive this prologue (hooks/puller.ts): its own session, only the config path of its environment. */
function startPuller(image: string): void {
  const { CBATCH_CACHE_DIR: bundles, CBATCH_CONFIG: config } = process.env
  const child = spawn(process.execPath, [join(bundles!, 'load.cjs'), 'puller', image],
    { detached: true, stdio: 'ignore', cwd: '/', env: { CBATCH_CONFIG: config } })
  child.on('error', err => pullRecord.ended(image, { refused: false, message: `cannot start the pull: ${err.message}` }))
  child.unref()
}

const hook = process.env.CBATCH_HOOK === 'prologue.parallel' ? 'prologue.parallel' : 'prologue'
void runHook(hook, () => args[0], async ({ env, batch, config, log, engine: engineOf, metrics }) => {
  const attempt: Attempt = {}
  try {
    const facts = parsePrologueArgs(args)
    if (!config.queues.has(facts.queue)) {
      log.info(`queue ${facts.queue} is not managed by cbatch: job runs natively`)
      return 0
    }
    // The job as pbs_mom hands it, read once: what the rest of the prologue works from.
    const job = jobContext(facts, env)
    const engine = engineOf()
    // Orphans are collected alongside, best effort: they must never fail this job.
    const gc = config.gc.onPrologue
      ? collectOrphans(engine, { batch, graceSeconds: config.gc.graceSeconds }).then(
        removed => {
          removed.forEach(c => log.info(`removed orphan ${c.name} of job ${c.labels[LABEL.job]}`))
          if (removed.length) metrics.count('cbatch_orphans_collected_total', {}, removed.length)
        },
        err => log.error(`orphan collection failed: ${(err as Error).message}`))
      : Promise.resolve()
    const [prepared] = await Promise.all([prepareJob(job, config, engine, { batch, sister: hook === 'prologue.parallel', startPuller, attempt }), gc])
    if (prepared.kind === 'container') {
      if (hook === 'prologue') clearRequeues(batch.stateDir)
      if (hook === 'prologue.parallel') {
        // The installed hooks are in mom_priv (hooks/wrapper.ts), which is where CBATCH_HOOKS_DIR points when set.
        await guardSister({ momPriv: batch.stateDir, hooksDir: process.env.CBATCH_HOOKS_DIR || batch.stateDir, containerId: prepared.id, args,
          onError: err => log.error(`cannot start the guard of container ${prepared.name}: ${err.message}; `
            + 'should pbs_mom abort the job here without epilogue.parallel, its container stays until cbatch gc') })
      }
      metrics.count('cbatch_jobs_started_total', { queue: facts.queue, node: hook === 'prologue' ? 'mother' : 'sister' })
      log.info(`container ${prepared.name} (${prepared.id.slice(0, 12)}) started from ${prepared.image} (${prepared.imageSource})`
        + (prepared.signer ? `, signed by ${prepared.signer}` : '')
        + (prepared.replaced ? ', replacing the one left by an earlier run' : ''))
    }
    return 0
  } catch (err) {
    // A requeued job comes straight back to this node: slow the loop down until the node
    // check takes the node out of scheduling (README, install.sh --node-check).
    if (!(err instanceof CbatchError) || err.disposition === 'requeue') {
      // A sister's non-zero exit marks its node down already; the mother superior's does not.
      // Only what says the node cannot run jobs counts, never what a job could bring about (countsAgainstNode).
      if (hook === 'prologue' && countsAgainstNode(err, attempt)) {
        // pbs_mom's arguments: the job's id and owner (parsed above, or the failure was a refusal).
        recordRequeue(batch.stateDir, { job: args[0] ?? '-', owner: args[1] ?? '-', reason: err instanceof Error ? err.message : String(err) }, { log })
      }
      await new Promise(r => setTimeout(r, config.engine.requeuePause * 1000))
    }
    throw err
  }
}, {
  onAbort: ({ batch }, err) => {
    if (args[0]) recordRefusal(batch, args[0], err.userMessage)
  },
})
