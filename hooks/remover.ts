// A detached removal of a job's container (lib/job/epilogue.ts). The epilogue has read the
// job's accounting and killed its processes from the host; the engine's stop and removal,
// whose unmount of the container's overlay syncs the node's filesystem (seconds after a job
// that wrote much), happen here, after pbs_mom has the epilogue's exit. Started as root, in
// a session of its own, with an environment holding only the config path its wrapper named.
// It waits until pbs_mom is done with the job (its files in mom_priv/jobs gone: output
// delivered, obit sent), so that the sync slows no job's stage-out. argv: the container's
// full id, which the epilogue found labelled as the job's, the job's id, and pbs_mom's
// mom_priv. Should it fail, `cbatch gc` (and every prologue's orphan collection) removes the
// container.
import { openEngine } from '../lib/engine/open.ts'
import { CbatchError } from '../lib/errors.ts'
import { nodeLogger } from '../lib/log.ts'
import { loadConfig } from '../lib/policy/config.ts'
import { leaveJobCgroups } from '../lib/torque/cgroups.ts'
import { jobKnown } from '../lib/torque/jobfile.ts'

const REMOVE_ATTEMPTS = 3
/** Longest wait for pbs_mom to be done with the job: a mom that keeps it longer does not keep its container. */
const JOB_END_WAIT_MS = 60_000
const [id = '', jobId = '-', momPriv = ''] = process.argv.slice(2)
const { CBATCH_CONFIG: configPath, CBATCH_CACHE_DIR: cacheDir } = process.env

async function remove(): Promise<void> {
  if (!configPath || !/^[0-9a-f]{64}$/.test(id) || !momPriv.startsWith('/')) throw new Error('usage: remover CONTAINER-ID JOB-ID MOM-PRIV, with CBATCH_CONFIG')
  leaveJobCgroups()
  // The config as the epilogue read it, before the wait: it may change or go meanwhile.
  const config = await loadConfig(configPath, { cacheDir })
  const log = nodeLogger('remover', jobId, config.log.file, config.log.syslog || undefined)
  const engine = openEngine(config.engine)
  for (const until = Date.now() + JOB_END_WAIT_MS; jobKnown(momPriv, jobId) && Date.now() < until;) await new Promise(r => setTimeout(r, 250))
  const started = performance.now()
  // An engine busy removing many containers at once may time a call out: try again first.
  for (let attempt = 1; ; attempt++) {
    try {
      await engine.remove(id)
      break
    } catch (err) {
      const message = err instanceof CbatchError ? err.message : String((err as Error)?.message ?? err)
      if (attempt === REMOVE_ATTEMPTS) {
        log.error(`removal of container ${id.slice(0, 12)} failed ${attempt} times (cbatch gc removes it): ${message}`)
        return
      }
      log.info(`removal of container ${id.slice(0, 12)} failed, trying again: ${message}`)
      await new Promise(r => setTimeout(r, 2000))
    }
  }
  const { user, system } = process.cpuUsage()
  log.info(`removed container ${id.slice(0, 12)}`, { ms: Math.round(performance.now() - started), cpuMs: Math.round((user + system) / 1000) })
}

remove().then(() => process.exit(0), err => {
  process.stderr.write(`cbatch remover: ${(err as Error).message}\n`)
  process.exit(2)
})
