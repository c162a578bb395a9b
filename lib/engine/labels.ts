// The labels cbatch puts on a job's container: the engine is the state store, and these
// are the record of a job (who, which queue, which mom). Every reader goes through labelOf.
export const LABEL = {
  job: 'cbatch.job',
  user: 'cbatch.user',
  uid: 'cbatch.uid',
  gid: 'cbatch.gid',
  queue: 'cbatch.queue',
  version: 'cbatch.version',
  shellFallback: 'cbatch.shell-fallback',
  scratch: 'cbatch.scratch',
  /** The job's `cput` limit, seconds: the starter enforces it as pbs_mom would. */
  cput: 'cbatch.cput',
  /** PBS_NODENUM: 0 on the mother superior, 1, 2, ... on sister nodes. */
  node: 'cbatch.node',
  /** The node's indices of the job's GPUs, comma-separated. */
  gpus: 'cbatch.gpus',
  /** mom_priv of the pbs_mom whose prologue made it: gc and ps of one mom leave another's alone. */
  mom: 'cbatch.mom',
  /** A sister's container sized before its share was known: its job's starters size it (job/share.ts resizeSister). */
  provisional: 'cbatch.provisional',
  /** The image as the job's queue granted it, by name: a signed one runs by its digest. */
  image: 'cbatch.image',
  /** Who signed the image, as verified (job/signatures.ts); empty when the queue asks for no signature. */
  signer: 'cbatch.signer',
} as const

export type LabelKey = typeof LABEL[keyof typeof LABEL]

/**
 * A cbatch label of a container, undefined when absent or empty. A container inherits its
 * image's labels, and a job owner may choose an image they built: create sets every label
 * of LABEL, empty where it does not apply (an explicit value, empty too, wins over the
 * image's), so that no `cbatch.*` value root reads ever comes from an image. Readers go
 * through here, so empty means "not set" everywhere.
 */
export function labelOf(labels: Record<string, string> | undefined, key: LabelKey): string | undefined {
  const value = labels?.[key]
  return value === undefined || value === '' ? undefined : value
}
