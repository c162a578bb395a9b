// cbatch.yaml as root reads it: a file only root may change, validated by parse.ts.
// Hooks keep the validated result beside their bundles, one file per config path, keyed
// by the build and the file's text: a hook whose config has not changed then neither loads the YAML parser
// and the schema nor runs them, which is a sizeable share of each hook's start-up
// (bench/RESULTS.md). The copy is trusted as the config is: only if root alone can change it.
import { createHash } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ConfigError, ConfigNotFoundError, UnsafePathError, type ConfigIssue } from '../errors.ts'
import { assertRecordFile, assertRootControlled, replaceFile } from '../host/trusted.ts'
import { assertCredentialsFile } from '../host/registryauth.ts'
import { BUILD } from '../version.ts'
import { CONFIG_LIMITS } from './bounds.ts'
import type { Config, QueuePolicy } from './schema.ts'

export type { Config, QueuePolicy } from './schema.ts'

export const DEFAULT_CONFIG_PATH = '/etc/cbatch/cbatch.yaml'

/** One validated copy per config path (a node has one; the emulator and tests, many). */
const cacheFileOf = (file: string) => `config-${createHash('sha256').update(file).digest('hex').slice(0, 16)}.json`

interface CachedConfig {
  key: string
  config: Omit<Config, 'queues'> & { queues: [string, QueuePolicy][] }
}

/**
 * Reads and validates the config file, which must be root's to change (it decides what
 * root does). `cacheDir`: a directory of root's where the validated config is kept.
 * `validated`: told when the file was validated here rather than taken from the kept copy
 * (with a cache, once per change of the file): the hooks log its warnings then.
 */
export async function loadConfig(path = DEFAULT_CONFIG_PATH, options: { cacheDir?: string; validated?: (config: Config) => void } = {}): Promise<Config> {
  const file = resolve(path)
  const text = readConfigText(file)
  const cache = options.cacheDir && join(options.cacheDir, cacheFileOf(file))
  const key = createHash('sha256').update(`${BUILD}\0${file}\0${text}`).digest('hex')
  const cached = cache ? readCache(cache, key) : undefined
  if (cached) return cached
  const { parseConfig } = await import('./parse.ts')
  const config = parseConfig(text, file)
  if (cache) writeCache(cache, key, config)
  options.validated?.(config)
  return config
}

function readConfigText(file: string): string {
  // Nothing there is nothing to trust: say so before judging where it would be.
  if (!existsSync(file)) throw new ConfigNotFoundError(file)
  try {
    // It and its directories must be root's, and writable by root alone.
    assertRootControlled(file, 'cbatch config', { mayBeMissing: true })
    // Not read at all when larger than any config may be (parse.ts says so of the text too).
    const { size } = statSync(file)
    if (size > CONFIG_LIMITS.bytes) throw new ConfigError(file, [{ path: '', message: `the file is ${size} bytes; a config may have at most ${CONFIG_LIMITS.bytes}` }])
    return readFileSync(file, 'utf8')
  } catch (err) {
    if (err instanceof ConfigError) throw err
    const reason = err instanceof UnsafePathError ? err.message : `cannot read: ${(err as NodeJS.ErrnoException).code ?? err}`
    throw new ConfigError(file, [{ path: '', message: reason }])
  }
}

/** The kept config if it is root's alone and was made by this build from this text. */
function readCache(cache: string, key: string): Config | undefined {
  try {
    assertRootControlled(cache, 'config cache')
    const kept = JSON.parse(readFileSync(cache, 'utf8')) as CachedConfig
    return kept.key === key ? { ...kept.config, queues: new Map(kept.config.queues) } : undefined
  } catch {
    return undefined // missing, or not to be trusted: validate the YAML again
  }
}

/** Whole files only (concurrent hooks each rename their own); best effort: speed only. */
function writeCache(cache: string, key: string, config: Config): void {
  try {
    assertRootControlled(join(cache, '..'), 'config cache directory', { strict: true })
    const kept: CachedConfig = { key, config: { ...config, queues: [...config.queues] } }
    replaceFile(cache, JSON.stringify(kept), 0o644)
  } catch {
    // validated again next time
  }
}

/**
 * What of `config` this node cannot safely obey, as config errors: every file root reads
 * as policy must be root's and writable by root alone, and every path root makes (records,
 * scratch bases) must sit where no one else may make its names first: root's directories,
 * writable by root alone, sticky or not. The hooks check each path again as they use it;
 * `config check` and `doctor` say so before any job meets it.
 */
export function checkHostPaths(config: Config): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const judge = (path: string, check: () => void) => {
    try {
      check()
    } catch (err) {
      if (!(err instanceof UnsafePathError)) throw err
      issues.push({ path, message: err.message })
    }
  }
  if (config.log.file) judge('log.file', () => assertRecordFile(config.log.file, 'node log'))
  if (config.accounting.file) judge('accounting.file', () => assertRecordFile(config.accounting.file, 'accounting file'))
  const textfile = config.metrics.textfile
  if (textfile) judge('metrics.textfile', () => assertRootControlled(textfile, 'metrics textfile', { strict: true, mayBeMissing: true }))
  const auth = config.images.auth
  if (auth) judge('images.auth', () => assertCredentialsFile(auth))
  for (const [name, queue] of config.queues) {
    const base = queue.scratch?.base
    if (base) judge(`queues.${name}.scratch.base`, () => assertRootControlled(base, 'scratch base', { strict: true, mayBeMissing: true }))
  }
  return issues
}
