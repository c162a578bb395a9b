// The container runtimes queues name (`runtime:`), judged against the ones the engine has
// (`cbatch config check`, `cbatch doctor`, the node check), and what each of the engine's
// runtimes says its version is (`cbatch doctor`).
import { readFileSync } from 'node:fs'
import type { ContainerEngine, EngineRuntime } from '../engine/engine.ts'
import type { ConfigIssue } from '../errors.ts'
import { execResult } from '../host/exec.ts'
import { replaceFile } from '../host/trusted.ts'
import type { Config } from '../policy/config.ts'

/** How long a runtime's `--version` may take: doctor must not hang on a broken one. */
export const VERSION_TIMEOUT_MS = 5000

/**
 * Each queue whose runtime the engine does not have, or has but cannot give a container, as
 * a config error at the line that names it: the queue's own, else the `defaults` it inherits.
 */
export async function missingRuntimes(config: Config, engine: Pick<ContainerEngine, 'runtimes' | 'runtimeUnusable'>): Promise<ConfigIssue[]> {
  const named = [...config.queues].filter(([, q]) => q.runtime !== undefined)
  if (!named.length) return []
  const known = await engine.runtimes()
  // Each runtime judged once, however many queues name it.
  const judged = new Map<string, Promise<string | undefined>>()
  const judge = (runtime: string) => {
    if (!judged.has(runtime)) {
      judged.set(runtime, known.includes(runtime)
        ? engine.runtimeUnusable(runtime).then(why => why && `is a runtime of the engine at ${config.engine.socket} that no container gets: ${why}`)
        : Promise.resolve(`is not a runtime of the engine at ${config.engine.socket} (it has ${known.join(', ') || 'none'}): `
          + 'register it with the engine (Docker: "runtimes" in /etc/docker/daemon.json, then kill -HUP dockerd; Podman: [engine.runtimes] in containers.conf) or name one it has'))
    }
    return judged.get(runtime)!
  }
  const problems: { queue: string; runtime: string; what: string }[] = []
  for (const [queue, { runtime }] of named) {
    const what = await judge(runtime!)
    if (what) problems.push({ queue, runtime: runtime!, what })
  }
  if (!problems.length) return []
  // The YAML parser only when there is something to place (the node check runs often).
  const { placeOf } = await import('../policy/parse.ts')
  let text: string | undefined
  try {
    text = readFileSync(config.file, 'utf8')
  } catch {
    // said without its line
  }
  return problems.map(({ queue, runtime, what }) => {
    const paths = [['queues', queue, 'runtime'], ['defaults', 'runtime']]
    const place = text === undefined ? { path: paths[0].join('.') } : placeOf(text, paths)
    const whose = place.path === 'defaults.runtime' ? ` (queue ${queue})` : ''
    return { ...place, message: `${JSON.stringify(runtime)}${whose} ${what}` }
  })
}

export interface RuntimeVersion extends EngineRuntime {
  /** The first line the runtime says of its version, when it answered. */
  version?: string
  /** Why it did not. */
  error?: string
}

/**
 * What each runtime's program says to `--version`, run by root with a clean environment and
 * within VERSION_TIMEOUT_MS. Its path is the engine's, from its root-owned configuration
 * (the socket is trusted only if root's: engine/open.ts); a bare name is found on root's PATH.
 */
export async function runtimeVersions(runtimes: EngineRuntime[], timeoutMs = VERSION_TIMEOUT_MS): Promise<RuntimeVersion[]> {
  return Promise.all(runtimes.map(async runtime => {
    if (!runtime.path) return { ...runtime, error: 'the engine names no program for it' }
    const { code, stdout, stderr } = await execResult([runtime.path, '--version'], 64 * 1024, timeoutMs)
    const first = stdout.split('\n').find(l => l.trim())?.trim()
    return code === 0 && first ? { ...runtime, version: first } : { ...runtime, error: (stderr.split('\n')[0] || `exit ${code}`).trim() }
  }))
}

/** Where in mom_priv the node check keeps the engine's verdicts on runtimes. */
export const RUNTIME_VERDICTS = 'cbatch-runtime-verdicts.json'

/** Verdicts of runtimeUnusable kept, by engine, its version and default runtime, and the runtime asked about. */
type Verdicts = Record<string, string | null>

/**
 * The engine, with its answers to runtimeUnusable kept in `file` (root's, in mom_priv) for as
 * long as its version and default runtime stay: the node check runs every few seconds, and
 * Podman finds each answer out by making a container.
 */
export function rememberingVerdicts(engine: Pick<ContainerEngine, 'runtimes' | 'runtimeUnusable' | 'describe'>, file: string):
  Pick<ContainerEngine, 'runtimes' | 'runtimeUnusable'> {
  let about: ReturnType<typeof engine.describe> | undefined
  return {
    runtimes: () => engine.runtimes(),
    async runtimeUnusable(runtime) {
      // Asked once, for every runtime judged.
      const { product, version, defaultRuntime } = await (about ??= engine.describe())
      const key = JSON.stringify([product, version, defaultRuntime, runtime])
      const kept = readVerdicts(file)
      if (Object.hasOwn(kept, key)) return kept[key] ?? undefined
      const why = await engine.runtimeUnusable(runtime)
      replaceFile(file, JSON.stringify({ ...kept, [key]: why ?? null }), 0o600)
      return why
    },
  }
}

/** The kept verdicts; none when the file is missing or is not what this module writes. */
function readVerdicts(file: string): Verdicts {
  try {
    const kept: unknown = JSON.parse(readFileSync(file, 'utf8'))
    if (kept && typeof kept === 'object' && !Array.isArray(kept) && Object.values(kept).every(v => v === null || typeof v === 'string')) return kept as Verdicts
  } catch {
    // none yet, or unreadable
  }
  return {}
}
