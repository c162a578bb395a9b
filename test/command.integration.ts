// The CLI's registry (bin/command.ts): each command parses its own options and runs its own
// handler, says its usage mistakes in its own terms with exit 64, and bash completion is
// written from the same list. Needs `npm run build`; no engine.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defineCommand } from '../bin/command.ts'
import { UsageError } from '../lib/errors.ts'
import { CBATCH } from './helpers/jobs.ts'

const cbatch = (...args: string[]) => spawnSync(CBATCH, args, { encoding: 'utf8' })
const commands = [...cbatch('--help').stdout.matchAll(/^ {2}([a-z]+) /gm)].map(m => m[1])

t.test('a command runs its own handler with its own typed options, or refuses what it does not know', async t => {
  const calls: unknown[] = []
  const command = defineCommand({
    name: 'probe', summary: 's', synopsis: 'X', rootOnly: true, examples: ['cbatch probe x'],
    options: { count: { type: 'string', value: 'N', help: 'how many' }, all: { type: 'boolean', help: 'every one' }, tag: { type: 'string', multiple: true, help: 't' } },
    run: async (positionals, values) => {
      // Typed per command: a string, a boolean and a list, no cast.
      const count: string | undefined = values.count
      const all: boolean | undefined = values.all
      const tags: string[] | undefined = values.tag
      calls.push({ positionals, count, all, tags })
      return 7
    },
  })
  t.equal(await command.invoke(['x', '--count', '3', '--all', '--tag', 'a', '--tag', 'b'], true), 7)
  t.same(calls, [{ positionals: ['x'], count: '3', all: true, tags: ['a', 'b'] }])
  await t.rejects(command.invoke(['--nope'], true), new UsageError('cbatch probe: unknown option --nope (cbatch probe --help)'))
  await t.rejects(command.invoke(['--count'], true), new UsageError('cbatch probe: --count needs a value (N) (cbatch probe --help)'))
  await t.rejects(command.invoke(['--all=yes'], true), new UsageError('cbatch probe: --all takes no value (cbatch probe --help)'))
  await t.rejects(command.invoke(['x'], false), new UsageError('cbatch probe must run as root, like pbs_mom'))
  t.equal(calls.length, 1, 'no handler ran for a mistake')
  t.equal(command.help(), `usage: cbatch probe X

options:
  --count N           how many
  --all               every one
  --tag VALUE         t (repeatable)
  -h, --help          this help

exit status: 0 done; 64 a usage mistake; 125 cbatch could not do it

examples:
  cbatch probe x
`)
})

t.test('every listed command is dispatched to itself: its own option mistakes, its own help', async t => {
  t.same(commands, ['run', 'gc', 'images', 'config', 'ps', 'doctor', 'logs', 'completion'])
  for (const name of commands) {
    const r = cbatch(name, '--bogus')
    t.equal(r.status, 64, name)
    t.equal(r.stderr, `cbatch ${name}: unknown option --bogus (cbatch ${name} --help)\n`, name)
    const help = cbatch(name, '--help')
    t.match(help.stdout, new RegExp(`^usage: cbatch ${name}.*\\n[^]*\\noptions:\\n[^]*\\nexit status: [^]*\\nexamples:\\n {2}cbatch ${name}`), name)
  }
})

t.test('cbatch run: mistakes of its command line are usage mistakes (64), before any hook runs', async t => {
  const dir = t.testdir({ 'job.sh': '#!/bin/sh\ntrue\n' })
  const job = join(dir, 'job.sh')
  t.match(cbatch('run', join(dir, 'missing.sh'), '--user', 'nobody'), { status: 64, stderr: `cbatch run: no job script ${dir}/missing.sh\n` })
  t.match(cbatch('run', job, '--user', 'nobody', '--resources', 'mem=lots'), { status: 64, stderr: /^cbatch run: --resources: mem=lots: size "lots" is not/ })
  t.match(cbatch('run', job, '--user', 'nobody', '--resources', 'garbage'), { status: 64, stderr: /^cbatch run: --resources: Resource_List item "garbage"/ })
  t.match(cbatch('run', '--user'), { status: 64, stderr: 'cbatch run: --user needs a value (USER) (cbatch run --help)\n' })
})

t.test('cbatch logs: a job number matches its full id; a job without lines says so and exits 1', async t => {
  const dir = t.testdir()
  const log = join(dir, 'jobs.log')
  const line = (job: string, message: string) => JSON.stringify({ time: '2026-01-01T00:00:00Z', hook: 'prologue', pid: 1, level: 'info', job, message })
  writeFileSync(log, [line('803501.head', 'mine'), line('8035010.head', 'another'), line('803501[2].head', 'a sub-job'), 'not json 803501'].join('\n'))
  const config = join(dir, 'cbatch.yaml')
  writeFileSync(config, `log: { file: ${log} }\nqueues: {}\n`)
  const short = cbatch('logs', '803501', '--config', config)
  t.equal(short.status, 0, short.stderr)
  t.same(short.stdout.trim().split('\n').map(l => l.split(' ').pop()), ['mine'])
  t.match(cbatch('logs', '803501[2]', '--config', config), { status: 0, stdout: /a sub-job\n$/ })
  t.match(cbatch('logs', '803501.head', '--config', config, '--json'), { status: 0, stdout: /"message":"mine"/ })
  t.match(cbatch('logs', '999.nosuch', '--config', config), { status: 1, stdout: '', stderr: `cbatch logs: ${log} has no line of job 999.nosuch\n` })
})

t.test('cbatch completion bash: commands, actions, options and values from the registry', async t => {
  const script = cbatch('completion', 'bash')
  t.equal(script.status, 0, script.stderr)
  const dir = t.testdir({ 'completion.bash': script.stdout, 'cbatch.yaml': '' })
  const complete = (...words: string[]) => spawnSync('bash', ['-c', `source completion.bash; COMP_WORDS=(${words.map(w => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _cbatch; printf '%s\\n' "\${COMPREPLY[@]}"`],
    { cwd: dir, encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean)
  t.same(complete('cbatch', ''), [...commands, '--help', '--version'])
  t.same(complete('cbatch', 'co'), ['config', 'completion'])
  t.same(complete('cbatch', 'images', ''), ['list', 'pull', 'prune'])
  t.same(complete('cbatch', 'gc', '--'), ['--config', '--pbs-home', '--grace', '--dry-run', '--help'])
  t.same(complete('cbatch', 'ps', '--config', 'cbatch.y'), ['cbatch.yaml'])
  t.same(complete('cbatch', 'run', '--user', 'roo'), ['root'])
  t.match(cbatch('completion', 'zsh'), { status: 64 })
})
