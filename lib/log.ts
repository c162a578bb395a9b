// The node log: one line per event, for the admin. The job owner sees only the
// short messages the hooks print to the job's .ER.
import { appendFileSync, mkdirSync } from 'node:fs'
import { dirname } from 'node:path'

export interface Logger {
  info(message: string): void
  error(message: string): void
}

/**
 * Appends to `file` (best effort: a node log that cannot be written must not fail a job).
 * With CBATCH_DEBUG set, lines go to stderr too.
 */
export function nodeLogger(hook: string, jobId: string, file: string | undefined,
  env: NodeJS.ProcessEnv = process.env): Logger {
  let ready = false
  const write = (level: string, message: string) => {
    const line = `${new Date().toISOString()} ${hook}[${process.pid}] ${jobId} ${level} ${message.replace(/\n/g, ' | ')}\n`
    if (env.CBATCH_DEBUG) process.stderr.write(line)
    if (!file) return
    try {
      if (!ready) mkdirSync(dirname(file), { recursive: true, mode: 0o755 })
      ready = true
      appendFileSync(file, line, { mode: 0o640 })
    } catch {
      // The node log is for diagnosis only.
    }
  }
  return { info: m => write('info', m), error: m => write('error', m) }
}
