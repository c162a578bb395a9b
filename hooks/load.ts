// Starts a hook bundle from V8's code cache: the wrapper runs `node load.cjs <hook> ARGS`.
// Compiling and warming a bundle costs a hook about as much as Node's own start-up; the
// cache (bytecode of every function the hook ran) removes most of it (bench/RESULTS.md).
// Node 20 has no built-in compile cache for CommonJS, hence these few lines.
//
// The cache sits beside the bundle, in the root-owned install directory, and is written
// by the hook itself (as root) whenever it is missing or V8 refused it (another Node), at
// the end of a run that succeeded (for the starter: a job that exited 0): then it holds the
// code of the path jobs take.
// V8 checks its version and flags, but matches the source by length only: the file starts
// with the bundle's SHA-256, so a cache is never used with any other bundle. Root runs
// both: each only if root alone can change it (lib/host/trusted.ts).
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import Module from 'node:module'
import { dirname, join } from 'node:path'
import { Script } from 'node:vm'
import { assertRootControlled, replaceFile } from '../lib/host/trusted.ts'
import { hookNamed } from '../lib/torque/hooks.ts'
import { printable } from '../lib/format.ts'

const DIGEST_BYTES = 32

const began = Date.now()
// Which bundle runs it (a sister's script runs its hook's): lib/torque/hooks.ts.
const entry = hookNamed(process.argv[2] ?? '') ?? unknownHook(process.argv[2] ?? '')
const hook = entry.name
const bundle = join(__dirname, `${entry.bundle}.cjs`)
const cacheFile = `${bundle}.cache`
// The bundle sees the argv it would have had if node had started it directly.
process.argv.splice(1, 2, bundle)
// Where the hook keeps what it derives from its config (lib/policy/config.ts): here too.
process.env.CBATCH_CACHE_DIR = __dirname
// Which of pbs_mom's scripts this is: the bundle's role on a sister node differs.
process.env.CBATCH_HOOK = hook

let source: Buffer
try {
  assertRootControlled(bundle, 'cbatch hook bundle')
  source = readFileSync(bundle)
} catch (err) {
  cannotRun((err as Error).message)
}
const digest = createHash('sha256').update(source).digest()
const cached = readCache()
const script = new Script(Module.wrap(source.toString('utf8')), { filename: bundle, cachedData: cached })
if (!cached || script.cachedDataRejected) process.on('exit', writeCache)

const hookModule = new Module(bundle)
hookModule.filename = bundle
const main = script.runInThisContext() as (...args: unknown[]) => void
main.call(hookModule.exports, hookModule.exports, require, hookModule, bundle, dirname(bundle))

/**
 * cbatch cannot run here: said to whoever reads this hook's stderr (a job's .ER), and to
 * pbs_mom in each hook's own terms (lib/torque/hooks.ts, cannotRunExit). The node check
 * says it on an `ERROR` line, which takes the node out of scheduling until it is fixed.
 */
function cannotRun(message: string): never {
  if (hook === 'nodecheck') process.stdout.write(`ERROR cbatch: ${printable(message)}\n`)
  process.stderr.write(`cbatch: ${printable(message)}\n`)
  process.exit(entry.cannotRunExit)
}

function unknownHook(name: string): never {
  process.stderr.write(`cbatch: unknown hook ${JSON.stringify(name)}\n`)
  process.exit(2)
}

function readCache(): Buffer | undefined {
  try {
    assertRootControlled(cacheFile, 'code cache') // else compiled afresh, and replaced
    const file = readFileSync(cacheFile)
    return file.subarray(0, DIGEST_BYTES).equals(digest) ? file.subarray(DIGEST_BYTES) : undefined
  } catch {
    return undefined
  }
}

/**
 * At exit, so the cache holds every function this run compiled. Not after a run that had to
 * validate the config (it wrote the validated copy, lib/policy/config.ts): the YAML parser
 * and schema it compiled would double the cache every later run loads; the next run writes
 * it. Best effort: speed only.
 */
function writeCache(code: number): void {
  if (code !== 0) return
  try {
    const copies = readdirSync(__dirname).filter(f => /^config-[0-9a-f]{16}\.json$/.test(f))
    if (copies.some(f => statSync(join(__dirname, f)).mtimeMs >= began)) return
  } catch {
    // no validated copy kept here: nothing to wait for
  }
  try {
    replaceFile(cacheFile, Buffer.concat([digest, script.createCachedData()]), 0o644) // concurrent hooks each write whole files
  } catch {
    // a read-only install runs uncached
  }
}
