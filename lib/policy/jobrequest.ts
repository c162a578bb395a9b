// What a job asks of cbatch itself: another image (`#CBATCH image=REF` in the script),
// which its queue must allow (image.ts), and extra mounts
// (`#CBATCH mount=/path[:ro]`, judged on their real paths by host/mounts.ts). Values are
// parsed strictly: nothing reaches a shell.
import { PolicyError } from '../errors.ts'
import { ImageReference } from './reference.ts'

export interface JobAsks {
  image?: string
  mounts: { path: string; readOnly: boolean }[]
}

const DIRECTIVE = /^#CBATCH\s+(.*)$/
export const MAX_DIRECTIVE_LINE = 1024
/** Most `#CBATCH` lines a script may have: each is work root does before the job runs. */
export const MAX_DIRECTIVE_LINES = 64
/** Most `#CBATCH mount=` a queue may allow (`maxMounts`): each is a resolver process and a bind mount made as root. */
export const MAX_MOUNTS = 256

/**
 * `#CBATCH key=value ...` lines of the script's leading comment block (as qsub reads
 * `#PBS` lines): parsing stops at the first line that is not blank or a comment. A job
 * asking for more than `maxMounts` mounts, or with more than MAX_DIRECTIVE_LINES lines, is
 * refused at once: nothing of what it asks is looked at on the host.
 */
export function parseDirectives(script: string, maxMounts = MAX_MOUNTS): JobAsks {
  const asks: JobAsks = { mounts: [] }
  let lines = 0
  for (const raw of script.split('\n')) {
    const line = raw.trim()
    if (line && !line.startsWith('#')) break
    const m = DIRECTIVE.exec(line)
    if (!m) continue
    if (line.length > MAX_DIRECTIVE_LINE) throw new PolicyError(`a #CBATCH line is longer than ${MAX_DIRECTIVE_LINE} characters`)
    if (++lines > MAX_DIRECTIVE_LINES) throw new PolicyError(`the job script has more than ${MAX_DIRECTIVE_LINES} #CBATCH lines`)
    for (const token of m[1].trim().split(/\s+/)) {
      const eq = token.indexOf('=')
      const [key, value] = eq > 0 ? [token.slice(0, eq), token.slice(eq + 1)] : [token, '']
      if (key === 'image') {
        asks.image = ImageReference.parse(value, '#CBATCH image').text
      } else if (key === 'mount') {
        if (asks.mounts.length >= maxMounts) {
          throw new PolicyError(`the job asks for more than ${maxMounts} mounts (#CBATCH mount=); its queue allows at most ${maxMounts}`)
        }
        asks.mounts.push(checkedMount(value))
      } else {
        throw new PolicyError(`#CBATCH ${token}: unknown directive (known: image=REF, mount=/path[:ro])`)
      }
    }
  }
  return asks
}

function checkedMount(value: string): { path: string; readOnly: boolean } {
  const readOnly = value.endsWith(':ro')
  const path = readOnly ? value.slice(0, -3) : value
  // Segments may not start with a dot: no `.` or `..`, no empty segments, no trailing slash.
  if (!/^(\/[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*)+$/.test(path)) {
    throw new PolicyError(`#CBATCH mount=${JSON.stringify(value)}: give a plain absolute path, optionally with :ro`)
  }
  return { path, readOnly }
}
