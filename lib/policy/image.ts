// Images: which one a job runs in (the queue's, or one its allow-list grants), and where
// a queue's images may come from. Making sure it is on the node is job/pull.ts's.
import picomatch from 'picomatch'
import type { JobAsks } from './jobrequest.ts'
import { PolicyError } from '../errors.ts'
import { ImageReference } from './reference.ts'

/** A queue's rules for images (its policy: schema.ts, parsed by parse.ts). */
export interface ImageRules {
  image: string
  allowedImages: string[]
  registries: string[]
  pinned: boolean
}

/** The queue's rules for where images come from: its registries, and digests only if pinned. */
export function checkImageSource(policy: Pick<ImageRules, 'registries' | 'pinned'>, image: string): void {
  const reference = ImageReference.of(image)
  if (policy.registries.length && !policy.registries.includes(reference.registry)) {
    throw new PolicyError(`image ${image} is not from a registry this queue allows (${policy.registries.join(', ')})`)
  }
  if (policy.pinned && !reference.pinned) {
    throw new PolicyError(`image ${image} is not pinned: this queue runs images named by digest only (image@sha256:...)`)
  }
}

/** The image of the job, as its queue allows; anything else aborts it. */
export function grantedImage(policy: ImageRules, asks: JobAsks): string {
  const wanted = asks.image
  if (!wanted || wanted === policy.image) return policy.image
  const candidate = ImageReference.of(wanted).completed
  if (!policy.allowedImages.some(pattern => picomatch.isMatch(candidate, pattern))) {
    throw new PolicyError(`image ${wanted} is not allowed in this queue; allowed: ${[policy.image, ...policy.allowedImages].join(', ')}`)
  }
  checkImageSource(policy, candidate)
  return candidate
}
