// The node's image cache, for its operator (`cbatch images`): what is there, when a job
// last used it, which queues name it, and what to remove to stay under the config's budget.
// Jobs' last uses are files of root's, one per image reference, touched by the prologue;
// root's alone to read too (0700, 0600): they tell who ran what, and when.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { NodeImage } from '../engine/engine.ts'
import type { QueuePolicy } from '../policy/config.ts'
import { ImageReference } from '../policy/reference.ts'
import { assertRootControlled, makeRootDir, replaceFile } from '../host/trusted.ts'

export const IMAGE_USE_DIR = '/var/lib/cbatch/image-use'

/** The prologue records that a job runs in `reference`; best effort (it only informs pruning). */
export function recordImageUse(reference: string, dir = IMAGE_USE_DIR): void {
  try {
    makeRootDir(dirname(dir), 'cbatch state directory') // /var/lib/cbatch: other state too
    makeRootDir(dir, 'image use directory')
    const file = join(dir, createHash('sha256').update(reference).digest('hex').slice(0, 32))
    replaceFile(file, reference, 0o600)
  } catch {
    // pruning then goes by the image's age
  }
}

/** When a job last ran in each image reference. */
export function lastUses(dir = IMAGE_USE_DIR): Map<string, Date> {
  const uses = new Map<string, Date>()
  let entries: string[] = []
  try {
    assertRootControlled(dir, 'image use directory', { strict: true })
    entries = readdirSync(dir).filter(f => /^[0-9a-f]{32}$/.test(f))
  } catch {
    return uses
  }
  for (const entry of entries) {
    try {
      uses.set(readFileSync(join(dir, entry), 'utf8'), statSync(join(dir, entry)).mtime)
    } catch {
      // removed meanwhile
    }
  }
  return uses
}

export interface CachedImage extends NodeImage {
  lastUse?: Date
  /** Queues whose image it is. */
  queues: string[]
  /** A container of the node was made from it. */
  inUse: boolean
}

/**
 * The names a queue or a job may have given an image the engine lists as `reference`: the
 * reference itself and, as Podman lists them, the short name it resolves to that image:
 * `localhost/<name>` (made or loaded on the node, found first by its short name) and Docker
 * Hub's `docker.io/library/<name>`, `docker.io/<owner>/<name>` (Docker lists these short).
 * Only for finding what a queue names and when a job used it; an image is removed by the
 * engine's own names.
 */
export function shortNames(reference: string): string[] {
  const short = /^(?:localhost|docker\.io)\/(.+)$/.exec(reference)?.[1]
  if (short === undefined) return [reference]
  const library = /^library\/([^/]+)$/.exec(short)?.[1]
  return [reference, short, ...(reference.startsWith('docker.io/') && library !== undefined ? [library] : [])]
}

/** The node's images with what the cache knows of each. */
export function describeImages(images: NodeImage[], inUse: Set<string>, queues: Map<string, Pick<QueuePolicy, 'image'>>,
  uses: Map<string, Date>): CachedImage[] {
  return images.map(image => {
    const names = new Set(image.references.flatMap(shortNames))
    const named = [...queues].filter(([, q]) => names.has(ImageReference.of(q.image).completed) || names.has(q.image)).map(([n]) => n)
    const times = [...names].map(r => uses.get(r)).filter((d): d is Date => !!d)
    return {
      ...image, queues: named, inUse: inUse.has(image.id),
      lastUse: times.length ? new Date(Math.max(...times.map(d => d.getTime()))) : undefined,
    }
  })
}

/**
 * What to remove to bring the images' total size under `budget` bytes: least recently used
 * first (by a job, else by creation), never one a container uses or a queue names.
 */
export function planPrune(images: CachedImage[], budget: number): CachedImage[] {
  let total = images.reduce((sum, i) => sum + i.size, 0)
  const removable = images.filter(i => !i.inUse && !i.queues.length)
    .sort((a, b) => (a.lastUse ?? a.created).getTime() - (b.lastUse ?? b.created).getTime())
  const plan: CachedImage[] = []
  for (const image of removable) {
    if (total <= budget) break
    plan.push(image)
    total -= image.size
  }
  return plan
}
