// cbatch images: the node's image cache for its operator (lib/node/imagecache.ts).
//   cbatch images [--json]            what is there: size, last use by a job, the queues naming it
//   cbatch images prune [--dry-run]   least recently used first, down to images.budget
//   cbatch images pull [--queue Q]    pre-pulls the queues' images, with progress
import { loadConfig, type Config } from '../lib/policy/config.ts'
import { openEngine } from '../lib/engine/open.ts'
import type { Engine, PullProgress } from '../lib/engine/engine.ts'
import { UsageError } from '../lib/errors.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { CONFIG, configPath } from './options.ts'
import { formatBytes, formatTable, printable, printableJson } from '../lib/format.ts'
import { describeImages, lastUses, planPrune, type CachedImage } from '../lib/node/imagecache.ts'
import { pullPlan, pullWithRetries } from '../lib/job/pull.ts'

export interface ImagesOptions {
  json?: boolean
  dryRun?: boolean
  queue?: string
  out?: NodeJS.WriteStream
}

export const IMAGES_ACTIONS = ['list', 'pull', 'prune'] as const
export type ImagesAction = typeof IMAGES_ACTIONS[number]

export async function images(action: ImagesAction, config: Config, engine: Engine, options: ImagesOptions): Promise<number> {
  const out = options.out ?? process.stdout
  if (action === 'prune') return prune(config, engine, options.dryRun, out)
  if (action === 'pull') return pull(config, engine, options.queue, out)
  return list(await cached(config, engine), options.json, out)
}

async function cached(config: Config, engine: Engine): Promise<CachedImage[]> {
  const [all, inUse] = await Promise.all([engine.listImages(), engine.imagesInUse()])
  return describeImages(all, inUse, config.queues, lastUses())
}

function list(images: CachedImage[], json: boolean | undefined, out: NodeJS.WritableStream): number {
  if (json) {
    out.write(`${printableJson(images)}\n`)
    return 0
  }
  const rows = [['IMAGE', 'ID', 'SIZE', 'LAST USED BY A JOB', 'QUEUES', 'IN USE'], ...images.map(i => [
    i.references.join(',') || '<none>', i.id.replace(/^sha256:/, '').slice(0, 12), formatBytes(i.size),
    i.lastUse?.toISOString().replace(/\.\d+Z$/, 'Z') ?? '-', i.queues.join(',') || '-', i.inUse ? 'yes' : 'no',
  ])]
  out.write(formatTable(rows))
  return 0
}

async function prune(config: Config, engine: Engine, dryRun: boolean | undefined, out: NodeJS.WritableStream): Promise<number> {
  const budget = config.images.budget
  if (budget === undefined) throw new UsageError(`set images.budget in ${config.file} (e.g. 200gb): the most the node's images may take`)
  const images = await cached(config, engine)
  const plan = planPrune(images, budget)
  const total = images.reduce((sum, i) => sum + i.size, 0)
  for (const image of plan) {
    if (!dryRun) for (const reference of image.references.length ? image.references : [image.id]) await engine.removeImage(reference)
    out.write(`${printable(`${dryRun ? 'would remove' : 'removed'} ${image.references.join(',') || image.id} (${formatBytes(image.size)}, last used ${image.lastUse?.toISOString() ?? 'never by a job'})`)}\n`)
  }
  const left = total - plan.reduce((sum, i) => sum + i.size, 0)
  out.write(`images: ${formatBytes(left)} of a budget of ${formatBytes(budget)}${left > budget ? ' (the rest is in use or named by a queue)' : ''}\n`)
  return 0
}

/**
 * Pulls what the queues need, for cron as much as for an operator: queues that never pull
 * (pull: never, images kept on the node by hand) are skipped; one image that fails does not
 * stop the others; each failure says why; the status is 1 if any image failed.
 */
async function pull(config: Config, engine: Engine, queue: string | undefined, out: NodeJS.WriteStream): Promise<number> {
  if (queue !== undefined && !config.queues.has(queue)) throw new UsageError(`queue ${queue} is not in ${config.file}`)
  const named = [...config.queues].filter(([name]) => queue === undefined || name === queue).map(([, q]) => q)
  const pulled = new Set(named.filter(q => q.pull !== 'never').map(q => q.image))
  for (const image of new Set(named.map(q => q.image))) {
    if (!pulled.has(image)) out.write(`${printable(`${image}: skipped (its queues say pull: never)`)}\n`)
  }
  const failed: string[] = []
  for (const image of pulled) {
    const show = progress(image, out)
    try {
      await pullWithRetries(engine, image, pullPlan(config.images, image, config.images.pullDeadline * 1000, show.event))
      show.done()
    } catch (err) {
      failed.push(image)
      out.write(`${out.isTTY ? '\n' : ''}${printable(`${image}: FAILED: ${(err as Error).message}`)}\n`)
    }
  }
  if (failed.length) out.write(`${printable(`cbatch images pull: ${failed.length} of ${pulled.size} images failed: ${failed.join(', ')}`)}\n`)
  return failed.length ? 1 : 0
}

/**
 * On a terminal, one line per image, rewritten as layers arrive; otherwise a plain line per
 * layer done. Layer ids and states are the registry's words: printed made printable.
 */
function progress(image: string, out: NodeJS.WriteStream) {
  const layers = new Map<string, string>()
  const downloaded = new Map<string, number>()
  const line = () => `${image}: ${[...layers.values()].filter(s => DONE.test(s)).length}/${layers.size} layers, `
    + `${formatBytes([...downloaded.values()].reduce((a, b) => a + b, 0))} downloaded`
  return {
    event(e: PullProgress) {
      if (!e.id || !e.status || /^(Pulling from|Digest|Status)/.test(e.status)) return
      const before = layers.get(e.id)
      layers.set(e.id, e.status)
      if (e.status === 'Downloading' && e.progressDetail?.current) downloaded.set(e.id, e.progressDetail.current)
      if (DONE.test(e.status) && !DONE.test(before ?? '')) {
        if (!out.isTTY) out.write(`${printable(`${image}: layer ${e.id} ${e.status.toLowerCase()}`)}\n`)
      }
      if (out.isTTY) out.write(`\r${line()}`)
    },
    done() {
      out.write(out.isTTY ? `\r${line()}\n` : `${image}: pulled\n`)
    },
  }
}

const DONE = /^(Pull complete|Already exists|Download complete)$/

const IMAGES_OPTIONS = {
  config: CONFIG,
  json: { type: 'boolean', help: 'list: as JSON' },
  queue: { type: 'string', value: 'QUEUE', help: 'pull: only this queue\'s image (default: every queue\'s)' },
  'dry-run': { type: 'boolean', help: 'prune: only list what would be removed to stay under images.budget' },
} as const

export const imagesCommand = defineCommand({
  name: 'images', summary: 'the node\'s images: list, pre-pull, prune under a budget; safe from cron',
  synopsis: '[list | pull | prune] [options]',
  description: `list (the default): each image's size, its last use by a job, the queues naming it, whether in use.
ll: pulls the queues' images now, with progress, so the first job does not wait.
une: removes images least recently used first until they fit images.budget; never one in
e or named by a queue.`,
  options: IMAGES_OPTIONS, actions: IMAGES_ACTIONS, rootOnly: true,
  examples: ['cbatch images', 'cbatch images pull --queue mpi', 'cbatch images prune --dry-run'],
  run: imagesAction,
})

async function imagesAction([action = 'list', ...extra]: string[], values: OptionValues<typeof IMAGES_OPTIONS>): Promise<number> {
  const known = IMAGES_ACTIONS.find(a => a === action)
  if (!known || extra.length) throw new UsageError(`cbatch images ${[action, ...extra].join(' ')}: expected list, pull or prune`)
  const config = await loadConfig(configPath(values))
  return images(known, config, openEngine(config.engine), { json: values.json, dryRun: values['dry-run'], queue: values.queue })
}
