// What cbatch prints to an operator's terminal from data a job controls: escapes made visible.
import t from 'tap'
import { formatTable, printable, printableJson } from '../lib/format.ts'

/** Real sequences a job can put in a value: clipboard write (OSC 52), window title, CSI (ESC and C1), bidi override, DEL, NUL. */
const HOSTILE = '\u001b]52;c;cm0gLXJmIH4=\u0007\u001b]2;pwned\u001b\\\u001b[2J\u009b31m\u202etxt.exe\u2066\u007f\u0000'

t.test('printable: every control and bidi character as a visible escape, the rest as it was', async t => {
  t.equal(printable(HOSTILE), '\\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b]2;pwned\\x1b\\\\x1b[2J\\x9b31m\\u202etxt.exe\\u2066\\x7f\\x00')
  t.equal(printable('two\nlines\r\tand\u2028more'), 'two\\nlines\\r\\tand\\u2028more')
  t.equal(printable('café ✓ 日本 /scratch/x y'), 'café ✓ 日本 /scratch/x y', 'printable text, non-ASCII too, untouched')
})

t.test('printableJson: still JSON of exactly the value, with nothing a terminal would act on', async t => {
  const value = { image: HOSTILE, n: 1 }
  const json = printableJson(value)
  t.notMatch(json, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
  t.same(JSON.parse(json), value)
  t.same(JSON.parse(printableJson(value, 2)), value)
})

t.test('formatTable (cbatch ps, cbatch images) escapes each cell before aligning', async t => {
  const table = formatTable([['JOB', 'IMAGE'], ['1.srv', HOSTILE], ['2.srv', 'x']])
  t.notMatch(table.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
  const lines = table.split('\n')
  t.equal(lines[1], `1.srv  ${printable(HOSTILE)}`)
  t.equal(lines[0].indexOf('IMAGE'), lines[2].indexOf('x'), 'columns aligned on what is shown')
})
