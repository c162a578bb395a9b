// The node log: one JSON object a line (time, hook, pid, job, level, message, and what the
// event adds), for the admin and their tools (`cbatch logs JOBID`). The job owner sees only
// the short messages the hooks print to the job's .ER. Messages may quote what a job
// asked for: each line is JSON with every control and bidi character escaped, so neither
// the file nor syslog carries a job's terminal escapes.
import { spawn } from 'node:child_process'
import { printableJson } from './format.ts'
import { appendToRootFile } from './host/trusted.ts'

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void
  /** Something obeyed that may not be what the admin meant (a config warning). */
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

/** One line of the node log. */
export interface LogLine {
  time: string
  hook: string
  pid: number
  job: string
  level: 'info' | 'warn' | 'error'
  message: string
  truncated?: boolean
  [field: string]: unknown
}

/** Longest line written: messages may quote what a job asked for. */
export const MAX_LOG_LINE = 4096

/** Where syslog listens on a Linux node. */
export const DEFAULT_SYSLOG = '/dev/log'

/**
 * Appends to `file`, root's own, and sends each line to syslog too when `syslog` names its
 * socket (util-linux `logger`, tag cbatch, facility daemon). A node log that cannot be
 * written must not fail a job, nor lose its lines unseen: the admin reads them in syslog
 * instead (`syslog`, else `fallbackSyslog`), after one line saying why.
 */
export function nodeLogger(hook: string, jobId: string, file: string | undefined, syslog?: string, fallbackSyslog = DEFAULT_SYSLOG): Logger {
  let diverted = false
  const write = (level: LogLine['level'], message: string, fields: Record<string, unknown> = {}) => {
    if (!file && !syslog) return
    const entry: LogLine = { time: new Date().toISOString(), hook, pid: process.pid, job: jobId.slice(0, 256), level, message, ...fields }
    let line = printableJson(entry)
    if (line.length > MAX_LOG_LINE) {
      // The message gives way first; what is still too long goes whole.
      const over = line.length - MAX_LOG_LINE + 32
      line = printableJson({ ...entry, message: message.slice(0, Math.max(0, message.length - over)), truncated: true })
      if (line.length > MAX_LOG_LINE) line = printableJson({ time: entry.time, hook, pid: entry.pid, job: entry.job, level, message: message.slice(0, 1024), truncated: true })
    }
    if (syslog) toSyslog(syslog, level, line)
    if (!file) return
    try {
      appendToRootFile(file, `${line}\n`, 'node log')
    } catch (err) {
      if (!diverted) {
        const reason = err instanceof Error ? err.message : String(err)
        toSyslog(syslog || fallbackSyslog, 'error', printableJson({ time: entry.time, hook, pid: entry.pid, job: entry.job, level: 'error',
          message: `node log ${file} cannot be used, so this hook's lines go to syslog: ${reason}` }))
        diverted = true
      }
      if (!syslog) toSyslog(fallbackSyslog, level, line)
    }
  }
  return { info: (m, f) => write('info', m, f), warn: (m, f) => write('warn', m, f), error: (m, f) => write('error', m, f) }
}

function toSyslog(socket: string, level: LogLine['level'], line: string): void {
  const priority = { error: 'daemon.err', warn: 'daemon.warning', info: 'daemon.info' }[level]
  try {
    // Not waited for: the hook goes on; logger ends on its own.
    spawn('logger', ['--socket', socket, '--tag', 'cbatch', '--priority', priority, '--', line],
      { stdio: 'ignore', env: { PATH: '/usr/bin:/bin' }, detached: true }).on('error', () => undefined).unref()
  } catch {
    // syslog is for diagnosis only
  }
}

/** The lines of a node log that are about `jobId` (any hook, any node's share); others and broken lines skipped. */
export function jobLines(text: string, jobId: string): LogLine[] {
  // A bare number (1234, 1234[5]) is the job of that number at any server.
  const matches = jobId.includes('.') ? (job: string) => job === jobId : (job: string) => job?.startsWith(`${jobId}.`)
  const lines: LogLine[] = []
  for (const raw of text.split('\n')) {
    if (!raw.includes(jobId)) continue
    try {
      const line = JSON.parse(raw) as LogLine
      if (matches(line.job)) lines.push(line)
    } catch {
      // a line of an older cbatch, or cut short
    }
  }
  return lines
}
