// Images: which one a job runs in (the queue's, or one its allow-list grants), and making
// sure it is on this node, as the queue's pull policy says.
import picomatch from 'picomatch'
import type { QueuePolicy } from './config.ts'
import type { JobAsks } from './jobrequest.ts'
import type { ImageStore } from '../engine/engine.ts'
import { ImageMissingError, PolicyError } from '../errors.ts'
import { registryOf } from '../host/registryauth.ts'

export type ImageSource = 'cached' | 'pulled'

/**
 * The image on this node, as the queue's pull policy says (`pull` fetches it: job/pull.ts),
 * and built for this node's platform.
 */
export async function ensureImage(engine: Pick<ImageStore, 'hasImage' | 'imagePlatform'>,
  policy: Pick<QueuePolicy, 'image' | 'pull'>, pull: (image: string) => Promise<void>): Promise<ImageSource> {
  let source: ImageSource = 'cached'
  if (policy.pull === 'always' || !await engine.hasImage(policy.image)) {
    if (policy.pull === 'never') {
      throw new ImageMissingError(`image ${policy.image} is not on this node and the queue's pull policy is "never"`)
    }
    await pull(policy.image)
    source = 'pulled'
  }
  const platform = await engine.imagePlatform(policy.image)
  const here = { os: 'linux', architecture: ARCHITECTURES[process.arch] ?? process.arch }
  if (platform && (platform.os !== here.os || platform.architecture !== here.architecture)) {
    throw new PolicyError(`image ${policy.image} is built for ${platform.os}/${platform.architecture}; this node is ${here.os}/${here.architecture}`)
  }
  return source
}

/** Node's names of architectures, as images name them. */
const ARCHITECTURES: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' }

/** The queue's rules for where images come from: its registries, and digests only if pinned. */
export function checkImageSource(policy: Pick<QueuePolicy, 'registries' | 'pinned'>, image: string): void {
  if (policy.registries.length && !policy.registries.includes(registryOf(image))) {
    throw new PolicyError(`image ${image} is not from a registry this queue allows (${policy.registries.join(', ')})`)
  }
  if (policy.pinned && !/@sha256:[0-9a-f]{64}$/.test(image)) {
    throw new PolicyError(`image ${image} is not pinned: this queue runs images named by digest only (image@sha256:...)`)
  }
}

// docker/distribution's reference grammar: [domain[:port]/]path[:tag][@digest].
const DOMAIN = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?'
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const REFERENCE = new RegExp(`^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

export function isImageReference(ref: string): boolean {
  return ref.length <= 255 && REFERENCE.test(ref)
}

export function checkedImage(ref: string, what: string): string {
  if (!isImageReference(ref)) throw new PolicyError(`${what}=${JSON.stringify(ref)} is not an image reference`)
  return ref
}

/** A reference as the engine completes it: `:latest` when it names no tag or digest. */
export function withTag(ref: string): string {
  return /[:@][^/]*$/.test(ref) ? ref : `${ref}:latest`
}

/** The image of the job, as its queue allows; anything else aborts it. */
export function grantedImage(policy: QueuePolicy, asks: JobAsks): string {
  const wanted = asks.image
  if (!wanted || wanted === policy.image) return policy.image
  const candidate = withTag(wanted)
  if (!policy.allowedImages.some(pattern => picomatch.isMatch(candidate, pattern))) {
    throw new PolicyError(`image ${wanted} is not allowed in this queue; allowed: ${[policy.image, ...policy.allowedImages].join(', ')}`)
  }
  checkImageSource(policy, candidate)
  return candidate
}
