// Image references, parsed once: docker/distribution's grammar, [domain[:port]/]path[:tag][@digest].
// Everyone who needs a part of a reference (its registry, its repository, whether it is
// pinned, its `:latest` completion) asks this type instead of cutting the string again.
import { PolicyError } from '../errors.ts'

const DOMAIN = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?'
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const GRAMMAR = new RegExp(`^(?:${DOMAIN}/)?${COMPONENT}(?:/${COMPONENT})*(?::[\\w][\\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`)

export class ImageReference {
  /** The reference as written. */
  readonly text: string
  /** Its name without tag or digest, domain included when written: `reg:5000/app`, `busybox`. */
  readonly repository: string
  readonly tag?: string
  /** `algorithm:hex`, when named by digest. */
  readonly digest?: string

  private constructor(text: string) {
    this.text = text
    const at = text.indexOf('@')
    const name = at < 0 ? text : text.slice(0, at)
    if (at >= 0) this.digest = text.slice(at + 1)
    const colon = name.lastIndexOf(':')
    const hasTag = colon > name.lastIndexOf('/')
    this.repository = hasTag ? name.slice(0, colon) : name
    if (hasTag) this.tag = name.slice(colon + 1)
  }

  /** Whether `text` is a reference by the grammar (and short enough for an engine). */
  static isValid(text: string): boolean {
    return text.length <= 255 && GRAMMAR.test(text)
  }

  /** `text` as a reference; a PolicyError naming `what` when it is not one (job input). */
  static parse(text: string, what: string): ImageReference {
    if (!ImageReference.isValid(text)) throw new PolicyError(`${what}=${JSON.stringify(text)} is not an image reference`)
    return new ImageReference(text)
  }

  /** The parts of a reference cbatch already holds (a queue's image, an engine's answer): not judged again. */
  static of(text: string): ImageReference {
    return new ImageReference(text)
  }

  /** The registry it names: its first component if that is a host, else Docker Hub. */
  get registry(): string {
    const first = this.text.split('/')[0]
    return this.text.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io'
  }

  /** Named by a sha256 digest: a tag moved in the registry never changes what it names. */
  get pinned(): boolean {
    return /^sha256:[0-9a-f]{64}$/.test(this.digest ?? '')
  }

  /** As the engine completes it: `:latest` when it names no tag or digest. */
  get completed(): string {
    return this.tag !== undefined || this.digest !== undefined ? this.text : `${this.text}:latest`
  }

  toString(): string {
    return this.text
  }
}
