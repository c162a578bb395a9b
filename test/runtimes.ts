// lib/node/runtimes.ts: queues' runtimes against the engine's, at the line that names them;
// what each runtime of the engine says its version is, within a timeout.
import t from 'tap'
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConfig } from '../lib/policy/parse.ts'
import { missingRuntimes, rememberingVerdicts, runtimeVersions } from '../lib/node/runtimes.ts'
import type { EngineDescription } from '../lib/engine/engine.ts'

const dir = mkdtempSync(join(tmpdir(), 'cbatch-runtimes-'))
/** An engine with these runtimes, of which `unusable` give no container (with why); it keeps what it was asked. */
function engineWith(runtimes: string[], unusable: Record<string, string> = {}) {
  const asked: string[] = []
  return {
    asked,
    runtimes: async () => runtimes,
    runtimeUnusable: async (runtime: string) => { asked.push(runtime); return unusable[runtime] },
  }
}
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('a runtime the engine lacks is an error at the line naming it: the queue\'s own, else the defaults\' it inherits', async t => {
  const file = join(dir, 'cbatch.yaml')
  const text = `defaults:
  runtime: kata
queues:
  batch:
    image: img:1
    runtime: runc
  untrusted:
    image: img:1
    runtime: runsc
  inherits:
    image: img:1
`
  writeFileSync(file, text)
  const config = parseConfig(text, file)
  t.same(await missingRuntimes(config, engineWith(['runc', 'runsc', 'kata'])), [], 'all there')
  t.match(await missingRuntimes(config, engineWith(['runc'])), [
    { path: 'queues.untrusted.runtime', line: 9, column: 14, message: /^"runsc" is not a runtime of the engine at \/var\/run\/docker.sock \(it has runc\): register it with the engine/ },
    { path: 'defaults.runtime', line: 2, column: 12, message: /^"kata" \(queue inherits\) is not a runtime of the engine/ },
  ])
  const untouched = engineWith([])
  t.same(await missingRuntimes(parseConfig('queues:\n  batch: { image: img:1 }\n', file), untouched), [], 'no queue names one: nothing asked')
  t.same(untouched.asked, [])
})

t.test('a runtime the engine has but gives no container (Podman\'s API ignoring it) is an error at its line too, with the engine\'s reason', async t => {
  const file = join(dir, 'ignored.yaml')
  const text = 'queues:\n  batch:\n    image: img:1\n    runtime: runc\n  untrusted:\n    image: img:1\n    runtime: runsc\n'
  writeFileSync(file, text)
  const engine = engineWith(['runc', 'runsc'], { runsc: 'every container gets runc' })
  t.match(await missingRuntimes(parseConfig(text, file), engine), [
    { path: 'queues.untrusted.runtime', line: 7, column: 14, message: '"runsc" is a runtime of the engine at /var/run/docker.sock that no container gets: every container gets runc' },
  ])
  t.same(engine.asked.sort(), ['runc', 'runsc'], 'each runtime a queue names is asked about')
  const shared = join(dir, 'shared.yaml')
  writeFileSync(shared, 'defaults:\n  runtime: runsc\nqueues:\n  a: { image: img:1 }\n  b: { image: img:1 }\n')
  const once = engineWith(['runc', 'runsc'], { runsc: 'every container gets runc' })
  t.equal((await missingRuntimes(parseConfig(readFileSync(shared, 'utf8'), shared), once)).length, 2, 'both queues said')
  t.same(once.asked, ['runsc'], 'their runtime asked about once')
})

t.test('the node check\'s verdicts are kept while the engine stays as it is, and asked again once it changes', async t => {
  const file = join(dir, 'verdicts.json')
  const engine = { ...engineWith(['runc', 'runsc'], { runsc: 'every container gets runc' }), about: { product: 'Podman', version: '4.3.1', defaultRuntime: 'runc' } }
  const describe = async () => engine.about as unknown as EngineDescription
  const judge = () => rememberingVerdicts({ ...engine, describe }, file)
  t.equal(await judge().runtimeUnusable('runsc'), 'every container gets runc')
  t.equal(await judge().runtimeUnusable('runsc'), 'every container gets runc', 'from the file, by a new process')
  t.equal(await judge().runtimeUnusable('runc'), undefined)
  t.equal(await judge().runtimeUnusable('runc'), undefined, 'a runtime it gives, kept too')
  t.same(engine.asked, ['runsc', 'runc'], 'the engine asked once each')
  t.equal(statSync(file).mode & 0o777, 0o600, 'root\'s alone')
  engine.about = { ...engine.about, version: '5.9.0' }
  await judge().runtimeUnusable('runsc')
  t.same(engine.asked, ['runsc', 'runc', 'runsc'], 'another version: asked again')
  for (const garbage of ['not json', 'null', '[1]', '{"x": 3}']) {
    writeFileSync(file, garbage)
    const asked = engine.asked.length
    t.equal(await judge().runtimeUnusable('runsc'), 'every container gets runc', `${garbage}: asked again`)
    t.equal(engine.asked.length, asked + 1)
  }
})

t.test('each runtime\'s --version, first line; one that fails or hangs says why, within the timeout', async t => {
  const program = (name: string, body: string) => {
    const path = join(dir, name)
    writeFileSync(path, `#!/bin/sh\n${body}\n`)
    chmodSync(path, 0o755)
    return path
  }
  const good = program('good', '[ "$1" = --version ] && [ -z "$CBATCH_LEAK" ] && printf "\\ngood version 1.2\\nspec: 1.0.2\\n"')
  const bad = program('bad', 'echo "no such flag" >&2; exit 2')
  const slow = program('slow', 'exec sleep 30')
  process.env.CBATCH_LEAK = 'the caller\'s environment'
  t.teardown(() => delete process.env.CBATCH_LEAK)
  const started = Date.now()
  const versions = await runtimeVersions([
    { name: 'good', path: good, args: ['--network=none'] },
    { name: 'bad', path: bad, args: [] },
    { name: 'slow', path: slow, args: [] },
    { name: 'gone', path: join(dir, 'missing'), args: [] },
    { name: 'unnamed', path: '', args: [] },
  ], 500)
  t.ok(Date.now() - started < 5000, 'a hanging runtime is not waited for')
  t.same(versions, [
    { name: 'good', path: good, args: ['--network=none'], version: 'good version 1.2' },
    { name: 'bad', path: bad, args: [], error: 'no such flag' },
    { name: 'slow', path: slow, args: [], error: 'did not end within 0.5 s' },
    { name: 'gone', path: join(dir, 'missing'), args: [], error: versions[3].error },
    { name: 'unnamed', path: '', args: [], error: 'the engine names no program for it' },
  ])
  t.match(versions[3].error, /ENOENT/)
})
