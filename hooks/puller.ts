// A detached pull of an image (lib/job/pull.ts). The first prologue on this node that
// needs the image starts it, as root, in a session of its own, with an environment that
// holds only the config path its own wrapper named; it may outlive that prologue and
// pbs_mom's alarm, so that the requeued job finds the image. argv: the image, which the
// prologue has already judged. Other prologues wait for what it records.
import { openEngine } from '../lib/engine/open.ts'
import { CbatchError, ImageDeniedError } from '../lib/errors.ts'
import { pullPlan, pullRecord, pullWithRetries } from '../lib/job/pull.ts'
import { nodeLogger } from '../lib/log.ts'
import { flushMetrics, MetricsBatch } from '../lib/node/metrics.ts'
import { loadConfig } from '../lib/policy/config.ts'
import { leaveJobCgroups } from '../lib/torque/cgroups.ts'
import { ImageReference } from '../lib/policy/reference.ts'

const image = process.argv[2] ?? ''
const { CBATCH_CONFIG: configPath, CBATCH_CACHE_DIR: cacheDir } = process.env

async function pull(): Promise<void> {
  if (!configPath || !ImageReference.isValid(image)) throw new Error('usage: puller IMAGE, with CBATCH_CONFIG')
  leaveJobCgroups()
  pullRecord.started(image)
  let log = nodeLogger('puller', '-', undefined)
  const metrics = new MetricsBatch()
  let textfile: string | undefined
  try {
    const config = await loadConfig(configPath, { cacheDir })
    textfile = config.metrics.textfile
    log = nodeLogger('puller', '-', config.log.file, config.log.syslog || undefined)
    const started = performance.now()
    await pullWithRetries(openEngine(config.engine), image, pullPlan(config.images, image, config.images.pullDeadline * 1000))
    const seconds = Math.round(performance.now() - started) / 1000
    log.info(`pulled image ${image}`, { image, seconds })
    pullRecord.ended(image, undefined)
    metrics.count('cbatch_image_pulls_total', { outcome: 'ok' })
    metrics.observe('cbatch_image_pull_duration_seconds', {}, seconds)
  } catch (err) {
    const message = err instanceof CbatchError ? err.message : String((err as Error)?.message ?? err)
    log.error(`pull of image ${image} failed: ${message}`, { image })
    pullRecord.ended(image, { refused: err instanceof ImageDeniedError, message })
    metrics.count('cbatch_image_pulls_total', { outcome: err instanceof ImageDeniedError ? 'refused' : 'failed' })
  }
  if (textfile) flushMetrics(metrics, textfile)
}

pull().then(() => process.exit(0), err => {
  process.stderr.write(`cbatch puller: ${(err as Error).message}\n`)
  process.exit(2)
})
