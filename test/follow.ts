// `cbatch run --follow`: the job's output file copied to a stream as it grows (emulator/output.ts).
import t from 'tap'
import { once } from 'node:events'
import { appendFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { tail } from '../emulator/output.ts'

/** A stream that keeps what it is given; `slow`: it takes each chunk 20 ms later, holding up to 16 MiB meanwhile. */
function sink(slow = false): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = []
  const stream = new Writable({
    highWaterMark: 16 * 1024 ** 2,
    write(chunk: Buffer, _encoding, done) {
      // A copy only once taken: a writer that reused its buffer meanwhile shows here.
      if (slow) setTimeout(() => { chunks.push(Buffer.from(chunk)); done() }, 20)
      else { chunks.push(Buffer.from(chunk)); done() }
    },
  })
  return { stream, text: () => Buffer.concat(chunks).toString() }
}

t.test('what is appended is copied as it comes; caughtUp waits for what is there; stop copies the rest', async t => {
  const file = join(t.testdir(), 'job.OU')
  const { stream, text } = sink()
  const follow = tail(file, stream)
  await follow.caughtUp()
  t.equal(text(), '', 'a file not there yet is waited for')
  writeFileSync(file, 'one\n')
  await follow.caughtUp()
  t.equal(text(), 'one\n')
  appendFileSync(file, 'two\n')
  await new Promise(r => setTimeout(r, 500))
  t.equal(text(), 'one\ntwo\n', 'woken by the change, without being asked')
  appendFileSync(file, 'three\n')
  await follow.stop()
  t.equal(text(), 'one\ntwo\nthree\n')
  await follow.caughtUp()
  t.pass('caughtUp after stop resolves at once')
})

t.test('a slow reader gets every byte in order', async t => {
  const file = join(t.testdir(), 'job.OU')
  const { stream, text } = sink(true)
  const follow = tail(file, stream)
  // Each piece of its own letter, copied while the reader still holds the last: a reused buffer would repeat one.
  let expected = ''
  for (const piece of ['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(3 * 1024 ** 2), 'end\n']) {
    appendFileSync(file, piece)
    expected += piece
    await follow.caughtUp()
  }
  await follow.stop()
  stream.end()
  await once(stream, 'finish') // what the stream still held
  t.equal(text().length, expected.length)
  t.ok(text() === expected, 'the same bytes')
})
