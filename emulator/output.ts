// The job's output files in PBS_HOME's spool (.OU, .ER): opened for the job's processes,
// followed while they grow (`cbatch run --follow`), and read into the job's record.
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, readSync, watch, type FSWatcher } from 'node:fs'

/** Most of a job's output file the record holds (a string cannot hold a GiB). */
export const MAX_RECORDED_OUTPUT = 64 * 1024 ** 2

/** The job's .OU and .ER for appending; one open file when they are one (qsub -j oe). */
export function openOutputs(files: { out: string; err: string }): [number, number] {
  const open = (file: string) => openSync(file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW)
  const out = open(files.out)
  return [out, files.err === files.out ? out : open(files.err)]
}

/** A job's output file followed as it grows (tail). */
export interface Tail {
  /** Resolves once what the file held when asked is copied. */
  caughtUp(): Promise<void>
  /** Copies the rest, then stops. */
  stop(): Promise<void>
}

/**
 * Copies what is appended to `file` into `to`, from its start; a file not there yet is waited
 * for. It wakes on the file's inotify events (fs.watch), so the reader gets output as it is
 * written, and every 200 ms whatever happens. At most 1 MiB read ahead of what `to` took.
 */
export function tail(file: string, to: NodeJS.WritableStream): Tail {
  let offset = 0
  let stopped = false
  let watcher: FSWatcher | undefined
  let wake = () => {}
  let waiting: (() => void)[] = []
  let finished = false
  const copy = async () => {
    let fd: number
    try {
      fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
    } catch {
      return
    }
    try {
      // Without inotify (its limits reached, an error later), the 200 ms poll still copies it all.
      try {
        watcher ??= watch(file, { persistent: false }, () => wake()).on('error', () => watcher?.close())
      } catch {
        watcher = undefined
      }
      for (;;) {
        // A buffer of its own each time: `to` may still hold the last one.
        const chunk = Buffer.allocUnsafe(1024 ** 2)
        const n = readSync(fd, chunk, 0, chunk.length, offset)
        if (n === 0) break
        offset += n
        if (!to.write(chunk.subarray(0, n))) await new Promise(r => to.once('drain', r))
      }
    } finally {
      closeSync(fd)
    }
  }
  const changed = () => new Promise<void>(resolve => {
    if (waiting.length || stopped) return resolve()
    const timer = setTimeout(() => wake(), 200)
    wake = () => {
      clearTimeout(timer)
      wake = () => {}
      resolve()
    }
  })
  const done = (async () => {
    try {
      do {
        const served = waiting
        waiting = []
        await copy()
        served.forEach(resolve => resolve())
        await changed()
      } while (!stopped)
      await copy()
    } finally {
      finished = true
      watcher?.close()
      waiting.forEach(resolve => resolve())
    }
  })()
  return {
    caughtUp: () => new Promise<void>(resolve => {
      if (finished) return resolve()
      waiting.push(resolve)
      wake()
    }),
    stop: () => {
      stopped = true
      wake()
      return done
    },
  }
}

/** The job's output as delivered; one larger than MAX_RECORDED_OUTPUT is kept whole in its file (emulateJob), and said so. */
export function readOutput(file: string): string {
  const fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
  try {
    const size = fstatSync(fd).size
    if (size <= MAX_RECORDED_OUTPUT) return readFileSync(fd, 'utf8')
    const head = Buffer.alloc(MAX_RECORDED_OUTPUT)
    readSync(fd, head, 0, MAX_RECORDED_OUTPUT, 0)
    return `${head.toString('utf8')}\n[cbatch run: the output is ${size} bytes; the first ${MAX_RECORDED_OUTPUT} are above, all of it (its end too) is kept in ${file}]\n`
  } finally {
    closeSync(fd)
  }
}
