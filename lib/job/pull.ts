// Pulls on a node: one at a time per image, and able to outlive the prologue that needed
// it. A big image may take longer than pbs_mom lets a prologue run ($prologalarm), and
// dozens of jobs may start at once for one image. So the first prologue that needs an
// image starts a pull of its own process (hooks/puller.ts), detached, and every prologue
// (that one too) waits for the image until its pull deadline; one that runs out requeues
// its job, and the requeued job finds the image, or the pull still under way. The pulls
// under way are directories in a directory of root's (/run/cbatch/pulls), made with
// mkdir, which only one process can win.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { ImageStore, PullOptions } from '../engine/engine.ts'
import { EngineTimeoutError, ImageDeniedError, ImageMissingError, ImagePullError, PolicyError, PullUnderWayError } from '../errors.ts'
import { makeRootDir, replaceFile } from '../host/trusted.ts'
import { registryAuth } from '../host/registryauth.ts'
import type { Config, QueuePolicy } from '../policy/config.ts'
import { ImageReference } from '../policy/reference.ts'

export const PULLS_DIR = '/run/cbatch/pulls'

export type ImageSource = 'cached' | 'pulled'

/**
 * The image on this node, as the queue's pull policy says (`pull` fetches it), and built
 * for this node's platform.
 */
export async function ensureImage(engine: Pick<ImageStore, 'imagePlatform'>,
  policy: Pick<QueuePolicy, 'image' | 'pull'>, pull: (image: string) => Promise<void>): Promise<ImageSource> {
  let source: ImageSource = 'cached'
  // One inspect says both whether the image is here and what it is built for.
  let platform = policy.pull === 'always' ? undefined : await engine.imagePlatform(policy.image)
  if (!platform) {
    if (policy.pull === 'never') {
      throw new ImageMissingError(`image ${policy.image} is not on this node and the queue's pull policy is "never"`)
    }
    await pull(policy.image)
    source = 'pulled'
    platform = await engine.imagePlatform(policy.image)
  }
  const here = { os: 'linux', architecture: ARCHITECTURES[process.arch] ?? process.arch }
  if (platform && (platform.os !== here.os || platform.architecture !== here.architecture)) {
    throw new PolicyError(`image ${policy.image} is built for ${platform.os}/${platform.architecture}; this node is ${here.os}/${here.architecture}`)
  }
  return source
}

/** Node's names of architectures, as images name them. */
const ARCHITECTURES: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' }

export interface PullPlan {
  /** The registry's credentials, read only when a pull is needed. */
  auth?: () => PullOptions['auth']
  /** Tries of a pull that failed in a way that may pass (registry down or failing). */
  attempts: number
  /** All tries together stay within this. */
  timeoutMs: number
  /** Pause before try n (n >= 2): 1 s, 2 s, 4 s… */
  pause?: (attempt: number) => Promise<void>
  onProgress?: PullOptions['onProgress']
}

/** How the config says to pull `image`: its tries, its registry's credentials, within `timeoutMs`. */
export function pullPlan(images: Config['images'], image: string, timeoutMs: number, onProgress?: PullPlan['onProgress']): PullPlan {
  return {
    attempts: images.pullAttempts, timeoutMs, onProgress,
    auth: () => (images.auth ? registryAuth(images.auth, ImageReference.of(image).registry) : undefined),
  }
}

const backoff = (attempt: number) => new Promise<void>(r => setTimeout(r, 1000 * 2 ** (attempt - 2)))

/**
 * Pulls `image` here and now. A registry that refuses it fails at once; one that is down
 * or failing is tried again, with growing pauses, until the tries or the time run out.
 */
export async function pullWithRetries(engine: Pick<ImageStore, 'pullImage'>, image: string, plan: PullPlan): Promise<void> {
  const until = Date.now() + plan.timeoutMs
  const auth = plan.auth?.()
  for (let attempt = 1; ; attempt++) {
    try {
      return await engine.pullImage(image, { auth, timeoutMs: Math.max(1, until - Date.now()), onProgress: plan.onProgress })
    } catch (err) {
      if (!(err instanceof ImagePullError) || err instanceof EngineTimeoutError || attempt >= plan.attempts || Date.now() >= until) throw err
      await (plan.pause ?? backoff)(attempt + 1)
    }
  }
}

/** Where this node coordinates the pulls of one image. */
function pullDir(image: string, pullsDir: string): string {
  return join(pullsDir, createHash('sha256').update(image).digest('hex').slice(0, 32))
}

/** A claim whose puller never recorded itself (its claimer died first) is stale after this. */
const UNSTARTED_CLAIM_MS = 30_000

/**
 * Claims the pull of `image` on this node: true if this process must start it, false if a
 * pull of it is under way (by a live process). A claim whose puller died is taken over.
 */
export function claimPull(image: string, pullsDir = PULLS_DIR): boolean {
  makeRootDir(dirname(pullsDir), 'cbatch run directory') // /run/cbatch
  makeRootDir(pullsDir, 'pulls directory')
  const dir = pullDir(image, pullsDir)
  for (let tries = 0; tries < 3; tries++) {
    try {
      mkdirSync(dir, { mode: 0o700 })
      // What became of the last pull no longer says anything about this one.
      for (const end of ['refused', 'failed']) rmSync(`${dir}.${end}`, { force: true })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const puller = pullerOf(dir)
    const stale = puller === undefined ? Date.now() - ageOf(dir) > UNSTARTED_CLAIM_MS : !alive(puller)
    if (!stale) return false
    rmSync(dir, { recursive: true, force: true })
  }
  return false
}

/** The puller records itself, and at the end what became of the pull, then lets go. */
export const pullRecord = {
  started(image: string, pullsDir = PULLS_DIR): void {
    replaceFile(join(pullDir(image, pullsDir), 'pid'), String(process.pid), 0o600)
  },
  ended(image: string, failure: { refused: boolean; message: string } | undefined, pullsDir = PULLS_DIR): void {
    const dir = pullDir(image, pullsDir)
    if (failure) replaceFile(`${dir}.${failure.refused ? 'refused' : 'failed'}`, failure.message, 0o600)
    rmSync(dir, { recursive: true, force: true })
  },
}

/**
 * Waits until the image is on the node, or its pull ended without it, or `timeoutMs`
 * passed: then the job is requeued, and the pull goes on for the job's next start.
 * `fresh` (pull policy `always`): the pull under way must end first, whatever is there.
 */
export async function waitForImage(engine: Pick<ImageStore, 'hasImage'>, image: string, timeoutMs: number,
  { fresh = false, pullsDir = PULLS_DIR, pollMs = 500 }: { fresh?: boolean; pullsDir?: string; pollMs?: number } = {}): Promise<void> {
  const until = Date.now() + timeoutMs
  const dir = pullDir(image, pullsDir)
  for (;;) {
    const pulling = existsSync(dir)
    if (!(fresh && pulling) && await engine.hasImage(image)) return
    if (!pulling) {
      const refused = readIfThere(`${dir}.refused`)
      if (refused !== undefined) {
        throw new ImageDeniedError(`the registry refused image ${image} (it does not exist there, or not for these credentials)`, refused)
      }
      throw new ImagePullError(`cannot pull image ${image}`, readIfThere(`${dir}.failed`) ?? 'the pull ended without it')
    }
    if (Date.now() >= until) {
      throw new PullUnderWayError(`image ${image} is still being pulled on this node`, 'the job is requeued and will find it there')
    }
    await new Promise(r => setTimeout(r, pollMs))
  }
}

function readIfThere(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
}

function pullerOf(dir: string): number | undefined {
  return Number(readIfThere(join(dir, 'pid'))) || undefined
}

function ageOf(dir: string): number {
  try {
    return statSync(dir).mtimeMs
  } catch {
    return 0
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

