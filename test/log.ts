import t from 'tap'
import { lstatSync, readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { MAX_LOG_LINE, nodeLogger } from '../lib/log.ts'

t.test('lines are single, capped, and appended only to root\'s own file', async t => {
  const dir = t.testdir({})
  const file = join(dir, 'logs/cbatch.log')
  const log = nodeLogger('prologue', '12.srv', file)
  log.info(`two\nlines ${'x'.repeat(10_000)}`)
  log.error('second')
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean)
  t.equal(lines.length, 2)
  t.ok(lines[0].length <= MAX_LOG_LINE && lines[0].endsWith('[truncated]'), 'capped')
  t.match(lines[0], / prologue\[\d+\] 12\.srv info two lines x/)
  t.equal(lstatSync(file).mode & 0o777, 0o640)
})

t.test('a link planted at the log\'s path is never written through', async t => {
  const dir = t.testdir({ target: 'untouched\n' })
  symlinkSync(join(dir, 'target'), join(dir, 'cbatch.log'))
  nodeLogger('epilogue', '1.x', join(dir, 'cbatch.log')).info('hello')
  t.equal(readFileSync(join(dir, 'target'), 'utf8'), 'untouched\n')
})
