// The job's output files in PBS_HOME's spool (.OU, .ER): opened for the job's processes,
// followed while they grow (`cbatch run --follow`), and read into the job's record.
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, readSync } from 'node:fs'

/** Most of a job's output file the record holds (a string cannot hold a GiB). */
export const MAX_RECORDED_OUTPUT = 64 * 1024 ** 2

/** The job's .OU and .ER for appending; one open file when they are one (qsub -j oe). */
export function openOutputs(files: { out: string; err: string }): [number, number] {
  const open = (file: string) => openSync(file, fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW)
  const out = open(files.out)
  return [out, files.err === files.out ? out : open(files.err)]
}

/**
 * Copies what is appended to `file` into `to`, from its start, until the returned stop()
 * (which copies the rest); a file not there yet is waited for. Never more than 1 MiB in memory.
 */
export function tail(file: string, to: NodeJS.WritableStream): () => Promise<void> {
  let offset = 0
  let stopped = false
  const chunk = Buffer.alloc(1024 ** 2)
  const copy = async () => {
    let fd: number
    try {
      fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW)
    } catch {
      return
    }
    try {
      for (let n; (n = readSync(fd, chunk, 0, chunk.length, offset)) > 0; offset += n) {
        if (!to.write(chunk.subarray(0, n))) await new Promise(r => to.once('drain', r))
      }
    } finally {
      closeSync(fd)
    }
  }
  const done = (async () => {
    while (!stopped) {
      await copy()
      await new Promise(r => setTimeout(r, 200))
    }
    await copy()
  })()
  return () => {
    stopped = true
    return done
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
