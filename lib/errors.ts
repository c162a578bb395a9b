// Typed errors of cbatch. Library code throws these; only the hook entry points
// turn them into exit codes (see exitCodeFor in hooks/run.ts).

/** What pbs_mom should do with the job when a hook fails. */
export type Disposition =
  | 'abort' // a fault of the job or of the config: retrying cannot help (prologue exit 1)
  | 'requeue' // a fault that may pass: engine down, pull failed, timeout (prologue exit 2)

export abstract class CbatchError extends Error {
  abstract readonly disposition: Disposition
  /** One line for the job owner; `message` carries the detail for the node log. */
  readonly userMessage: string

  constructor(userMessage: string, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${userMessage}: ${detail}` : userMessage, options)
    this.userMessage = userMessage
    this.name = new.target.name
  }
}

/** One problem found in the config file, located by dot-path, line and column. */
export interface ConfigIssue {
  path: string
  line?: number
  column?: number
  message: string
  /** The cross-field rule that found it (policy/rules.ts), if one did. */
  rule?: string
}

/** `file:line:column: dot.path: message`, as editors and compilers say it. */
export function describeIssue(file: string, i: ConfigIssue): string {
  return `${file}${i.line ? `:${i.line}${i.column ? `:${i.column}` : ''}` : ''}: ${i.path ? `${i.path}: ` : ''}${i.message}${i.rule ? ` [${i.rule}]` : ''}`
}

export class ConfigError extends CbatchError {
  readonly disposition = 'abort'
  readonly file: string
  readonly issues: ConfigIssue[]

  constructor(file: string, issues: ConfigIssue[], lead = 'invalid cbatch config') {
    const where = (i: ConfigIssue) => describeIssue(file, i)
    super(`${lead} ${where(issues[0])}${issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''}`,
      issues.length > 1 ? issues.slice(1).map(where).join('; ') : undefined)
    this.file = file
    this.issues = issues
  }
}

/** The config file is not there: nothing in it is wrong, it is missing (a typo in --config, an install not done). */
export class ConfigNotFoundError extends ConfigError {
  constructor(file: string) {
    super(file, [{ path: '', message: 'not found' }], 'no cbatch config:')
  }
}

/** pbs_mom called a hook with arguments or environment it never sends. */
export class UsageError extends CbatchError {
  readonly disposition = 'abort'
}

/** The job asks for something its queue's policy does not allow. */
export class PolicyError extends CbatchError {
  readonly disposition = 'abort'
}

/** The job owner cannot be resolved on this node. */
export class IdentityError extends CbatchError {
  readonly disposition = 'abort'
}

/**
 * A path root was to rely on, or to work in, could be changed by someone other than root
 * (config, engine socket, log, scratch base), or a path of the job is not what it claimed.
 */
export class UnsafePathError extends CbatchError {
  readonly disposition = 'abort'
}

/** The job's container is not there: its prologue did not run or failed. */
export class ContainerNotFoundError extends CbatchError {
  readonly disposition = 'requeue'
}

/** The job's container is there but no longer runs (its holder ended, the engine restarted it away). */
export class ContainerStoppedError extends CbatchError {
  readonly disposition = 'requeue'
}

/** The Docker engine is unreachable, failed, or did not answer in time. */
export class EngineError extends CbatchError {
  readonly disposition = 'requeue'
}

export class EngineTimeoutError extends EngineError {}

export class ImagePullError extends EngineError {}

/** The image's pull goes on (a big image): the job is requeued to find it, which says nothing bad of the node. */
export class PullUnderWayError extends ImagePullError {}

/** The image the job chose (#CBATCH image=) could not be pulled: requeued, but the job's registry is no fault of the node. */
export class JobImagePullError extends ImagePullError {}

/** The registry refused the image (no such image, or not with these credentials): retrying cannot help. */
export class ImageDeniedError extends CbatchError {
  readonly disposition = 'abort'
}

/** The engine answered that it cannot make the job's container as asked: retrying cannot help. */
export class ContainerRefusedError extends CbatchError {
  readonly disposition = 'abort'
}

/** The queue names a container runtime this node's engine does not have. */
export class RuntimeMissingError extends CbatchError {
  readonly disposition = 'abort'
}

/** The image carries no valid signature of a key its queue trusts (unsigned, or signed wrongly). */
export class SignatureError extends CbatchError {
  readonly disposition = 'abort'
}

/** A registry answered with something other than what was asked: longer than cbatch reads, or content other than its digest. */
export class RegistryAnswerError extends CbatchError {
  readonly disposition = 'abort'
}

/** The image is not on this node and the pull policy forbids pulling it. */
export class ImageMissingError extends CbatchError {
  readonly disposition = 'abort'
}

/** pbs_mom's files of a job (its job file, its script), or the directory it runs in, are missing, unreadable or not what they should be. */
export class JobFileError extends CbatchError {
  readonly disposition = 'abort'
}
