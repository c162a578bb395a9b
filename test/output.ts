// What the epilogue reads of the job's output before its summary line: only whether the
// last byte is a newline, through the file pbs_mom opened (its fd), never by path.
import t from 'tap'
import { closeSync, openSync, renameSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { atLineStart } from '../lib/job/output.ts'

t.test('the summary line starts a line: a newline is added only after a last line without one', async t => {
  const dir = t.testdir({ ends: 'last line\n', open: 'last line', empty: '' })
  for (const [name, expected] of [['ends', true], ['open', false], ['empty', true]] as const) {
    const fd = openSync(join(dir, name), 'a') // as pbs_mom opens .OU: for writing only
    t.equal(atLineStart(fd), expected, name)
    closeSync(fd)
  }
  t.equal(atLineStart(-1), true, 'no such descriptor: nothing added')
})

t.test('the output file swapped for a link to root\'s file after it was opened: the open file is read, not the path', async t => {
  const dir = t.testdir({ 'job.OU': 'no newline', 'root-file': 'ends with one\n' })
  const fd = openSync(join(dir, 'job.OU'), 'a')
  renameSync(join(dir, 'job.OU'), join(dir, 'moved'))
  symlinkSync(join(dir, 'root-file'), join(dir, 'job.OU'))
  t.equal(atLineStart(fd), false, 'the file pbs_mom opened, whatever its path names now')
  closeSync(fd)
})
