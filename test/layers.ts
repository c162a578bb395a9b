// docs/architecture.md's rule, kept true: a module imports only from its own layer or the
// ones below it, and imports form no cycle, type-only imports included.
import t from 'tap'
import ts from 'typescript'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..')

/** The layers from the bottom; a module's layer is the first whose pattern matches its path. */
const LAYERS: [string, RegExp][] = [
  ['base', /^lib\/(errors|format|version)\.ts$/],
  ['host', /^lib\/(host\/|log\.ts$)/],
  ['torque', /^lib\/torque\//],
  ['policy', /^lib\/policy\//],
  ['engine', /^lib\/engine\//],
  ['node', /^lib\/node\//],
  ['job', /^lib\/job\//],
  // The entry points; the emulator is `cbatch run`'s pbs_mom.
  ['entry', /^(hooks|bin|emulator)\//],
]

export function layerOf(path: string): number {
  const i = LAYERS.findIndex(([, pattern]) => pattern.test(path))
  if (i < 0) throw new Error(`${path} is in no layer of test/layers.ts`)
  return i
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter(name => name.endsWith('.ts'))
    .map(name => join(dir, name))
}

/** Every relative import, export-from and import() of a file, as paths from the root. */
export function importsOf(file: string, text = readFileSync(join(ROOT, file), 'utf8')): string[] {
  return ts.preProcessFile(text, true, true).importedFiles
    .map(i => i.fileName)
    .filter(name => name.startsWith('.'))
    .map(name => relative(ROOT, resolve(ROOT, dirname(file), name)))
}

/** The cycles of a graph, each once, as the path that closes it. */
export function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = []
  const done = new Set<string>()
  const stack: string[] = []
  const visit = (node: string) => {
    const at = stack.indexOf(node)
    if (at >= 0) { found.push([...stack.slice(at), node]); return }
    if (done.has(node)) return
    stack.push(node)
    for (const next of graph.get(node) ?? []) visit(next)
    stack.pop()
    done.add(node)
  }
  for (const node of [...graph.keys()].sort()) visit(node)
  return found
}

t.test('the scan sees type-only imports, re-exports and dynamic imports', async t => {
  const text = "import type { A } from './a.ts'\nexport { B } from '../b.ts'\nconst c = await import('./c.ts')\nimport 'node:fs'\n"
  t.same(importsOf('lib/x/m.ts', text), ['lib/x/a.ts', 'lib/b.ts', 'lib/x/c.ts'])
  t.same(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c', 'a']])
  t.same(cycles(new Map([['a', ['b']], ['b', []]])), [])
})

t.test('no module imports from a layer above its own', async t => {
  const upward: string[] = []
  for (const file of ['lib', 'hooks', 'bin', 'emulator'].flatMap(sources)) {
    for (const target of importsOf(file)) {
      if (layerOf(target) > layerOf(file)) upward.push(`${file} (${LAYERS[layerOf(file)][0]}) -> ${target} (${LAYERS[layerOf(target)][0]})`)
    }
  }
  t.same(upward, [])
})

t.test('imports form no cycle, type-only ones included', async t => {
  const graph = new Map(['lib', 'hooks', 'bin', 'emulator'].flatMap(sources).map(file => [file, importsOf(file)]))
  t.same(cycles(graph).map(cycle => cycle.join(' -> ')), [])
})
