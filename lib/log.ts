// The node log: one line per event, for the admin. The job owner sees only the
// short messages the hooks print to the job's .ER.
import { appendToRootFile } from './host/trusted.ts'

export interface Logger {
  info(message: string): void
  error(message: string): void
}

/** Longest line written: messages may quote what a job asked for. */
export const MAX_LOG_LINE = 4096

/** Appends to `file`, root's own (best effort: a node log that cannot be written must not fail a job). */
export function nodeLogger(hook: string, jobId: string, file: string | undefined): Logger {
  const write = (level: string, message: string) => {
    if (!file) return
    let line = `${new Date().toISOString()} ${hook}[${process.pid}] ${jobId.slice(0, 256)} ${level} ${message.replace(/[\0-\x1f\x7f]/g, ' ')}`
    if (line.length > MAX_LOG_LINE) line = `${line.slice(0, MAX_LOG_LINE - 12)} [truncated]`
    try {
      appendToRootFile(file, `${line}\n`, 'node log')
    } catch {
      // The node log is for diagnosis only.
    }
  }
  return { info: m => write('info', m), error: m => write('error', m) }
}
