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
import { LABEL } from '../lib/engine/container.ts'
import { CbatchError } from '../lib/errors.ts'
import { recordRefusal } from '../lib/job/refusal.ts'
import { clearRequeues, recordRequeue } from '../lib/node/requeues.ts'
import { parsePrologueArgs } from '../lib/torque/contract.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'
import { runHook } from './run.ts'

const args = process.argv.slice(2)
/** Seconds a sister's guard waits for the job file, then between looks at it. */
const GUARD_JOB_FILE_WAIT = 10
const GUARD_POLL = 3

/** A pull that may outlive this prologue (hooks/puller.ts): its own session, only the config path of its environment. */
function startPuller(image: string): void {
  const { CBATCH_CACHE_DIR: bundles, CBATCH_CONFIG: config } = process.env
  const child = spawn(process.execPath, [join(bundles!, 'load.cjs'), 'puller', image],
    { detached: true, stdio: 'ignore', cwd: '/', env: { CBATCH_CONFIG: config } })
  child.on('error', err => pullRecord.ended(image, { refused: false, message: `cannot start the pull: ${err.message}` }))
  child.unref()
}
/**
 * A sister's guard, in the background for the job's life: pbs_mom runs no
 * epilogue.parallel for a job it aborts (when the mother superior's prologue fails, each try
 * of the job) or forgets: once the job file is gone (or never came), the guard runs the
 * installed epilogue.parallel itself, for this container only. It is busybox sh and sleep,
 * not node, and leaves the job's cgroups (it outlives them). Arguments: the jobs directory,
 * the job's file prefix, the hooks' directory, then pbs_mom's 8 prologue arguments.
 */
const SISTER_GUARD = `sed -n 's|^[0-9]*:\\([^:]*\\):/torque/.*|\\1|p' /proc/self/cgroup | while read -r c; do echo $$ >"/sys/fs/cgroup/\${c#name=}/cgroup.procs"; done 2>/dev/null
jobs=$1 prefix=$2 hooks=$3; shift 3
known() { for f in "$jobs/$prefix.JB" "$jobs/$prefix"[0-9]*.JB; do [ -e "$f" ] && return 0; done; return 1; }
i=0; until known || [ $i -ge ${GUARD_JOB_FILE_WAIT} ]; do sleep 1; i=$((i + 1)); done
while known; do sleep ${GUARD_POLL}; done
exec "$hooks/epilogue.parallel" "$1" "$2" "$3" "$4" 0 "$5" "" "$6" "$7" 0 "$8"`

function guardSister(momPriv: string, containerId: string): void {
  const [jobId, user, group, jobName, resources, queue, account, scriptPath] = args
  const child = spawn('/bin/busybox', ['sh', '-c', SISTER_GUARD, 'cbatch-guard', join(momPriv, 'jobs'), jobFilePrefix(jobId), process.env.CBATCH_HOOKS_DIR!,
    jobId, user, group, jobName, resources, queue, account, scriptPath ?? ''],
  { detached: true, stdio: 'ignore', cwd: '/', env: { PATH: '/bin:/usr/bin', CBATCH_SISTER_CONTAINER: containerId } })
  child.unref()
}

const hook = process.env.CBATCH_HOOK === 'prologue.parallel' ? 'prologue.parallel' : 'prologue'
void runHook(hook, () => args[0], { abort: 0, requeue: 2, internal: 2 }, async ({ env, momPriv, config, log, engine: engineOf, metrics }) => {
  const attempt: Attempt = {}
  try {
    const facts = parsePrologueArgs(args)
    if (!config.queues.has(facts.queue)) {
      log.info(`queue ${facts.queue} is not managed by cbatch: job runs natively`)
      return 0
    }
    const engine = engineOf()
    // Orphans are collected alongside, best effort: they must never fail this job.
    const gc = config.gc.onPrologue
      ? collectOrphans(engine, { momPriv, graceSeconds: config.gc.graceSeconds }).then(
        removed => {
          removed.forEach(c => log.info(`removed orphan ${c.name} of job ${c.labels[LABEL.job]}`))
          if (removed.length) metrics.count('cbatch_orphans_collected_total', {}, removed.length)
        },
        err => log.error(`orphan collection failed: ${(err as Error).message}`))
      : Promise.resolve()
    const [prepared] = await Promise.all([prepareJob(facts, config, engine, { env, momPriv, sister: hook === 'prologue.parallel', startPuller, attempt }), gc])
    if (prepared.kind === 'container') {
      if (hook === 'prologue') clearRequeues(momPriv)
      if (hook === 'prologue.parallel') guardSister(momPriv, prepared.id)
      metrics.count('cbatch_jobs_started_total', { queue: facts.queue, node: hook === 'prologue' ? 'mother' : 'sister' })
      log.info(`container ${prepared.name} (${prepared.id.slice(0, 12)}) started from ${prepared.image} (${prepared.imageSource})`
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
        recordRequeue(momPriv, { job: args[0] ?? '-', owner: args[1] ?? '-', reason: err instanceof Error ? err.message : String(err) }, { log })
      }
      await new Promise(r => setTimeout(r, config.engine.requeuePause * 1000))
    }
    throw err
  }
}, {
  onAbort: ({ momPriv }, err) => {
    if (args[0]) recordRefusal(momPriv, args[0], err.userMessage)
  },
})
