// A program root runs for cbatch, and what came of it, never thrown: callers judge the exit
// code. Node's own execFile, not execa: these run in every hook, and loading execa alone
// costs more than the whole start-up budget of a hook (bench/RESULTS.md). Always a fixed,
// clean environment, never one of a job's.
import { execFile } from 'node:child_process'

export interface ExecResult {
  /** The exit code; -1 when it did not start, was killed or said more than `maxBuffer`. */
  code: number
  stdout: string
  /** Its stderr, or why it did not run. */
  stderr: string
}

export const CLEAN_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }

/** `timeoutMs`: killed (SIGKILL) after that long, for programs cbatch does not trust to end (-1). */
export function execResult([file, ...args]: string[], maxBuffer = 1 << 20, timeoutMs = 0): Promise<ExecResult> {
  return new Promise(resolve => {
    execFile(file, args, { env: CLEAN_ENV, encoding: 'utf8', maxBuffer, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = (err as { code?: unknown } | null)?.code
      const timedOut = timeoutMs > 0 && err?.killed && err.signal === 'SIGKILL'
      resolve({ code: err ? (typeof code === 'number' ? code : -1) : 0, stdout, stderr: timedOut ? `did not end within ${timeoutMs / 1000} s` : stderr || (err?.message ?? '') })
    })
  })
}
