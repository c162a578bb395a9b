// Makes sure the queue's image is on this node, as its pull policy says.
import type { QueuePolicy } from './config.ts'
import type { ContainerEngine } from './engine.ts'
import { ImageMissingError } from './errors.ts'

export type ImageSource = 'cached' | 'pulled'

export async function ensureImage(engine: Pick<ContainerEngine, 'hasImage' | 'pullImage'>,
  policy: Pick<QueuePolicy, 'image' | 'pull'>): Promise<ImageSource> {
  if (policy.pull !== 'always' && await engine.hasImage(policy.image)) return 'cached'
  if (policy.pull === 'never') {
    throw new ImageMissingError(`image ${policy.image} is not on this node and the queue's pull policy is "never"`)
  }
  await engine.pullImage(policy.image)
  return 'pulled'
}
