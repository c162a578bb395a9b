// cbatch.yaml's text -> the config cbatch obeys. Order of work: YAML syntax -> schema (with
// defaults) -> per-queue merge -> sizes in bytes -> cross-field rules (rules.ts). Every
// problem is reported with its dot-path and line.
import type { TSchema } from '@sinclair/typebox'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'
import { LineCounter, parseDocument, isNode, type Document } from 'yaml'
import { ConfigError, type ConfigIssue } from '../errors.ts'
import { parseSize } from '../torque/contract.ts'
import { CONFIG_LIMITS } from './bounds.ts'
import { applyRules, FILE_RULES, QUEUE_RULES } from './rules.ts'
import { ConfigSchema, QueuePolicySchema, type Config, type PolicyText, type QueuePolicy, type RawConfig } from './schema.ts'

/**
 * The config file's text -> the config cbatch obeys, sizes in bytes. Every problem of the
 * file is reported at once (schema, sizes, rules), errors in the ConfigError, warnings in
 * `warnings`; only a file too large or not YAML at all stops at that.
 */
export function parseConfig(text: string, file = '<config>'): Config {
  if (Buffer.byteLength(text) > CONFIG_LIMITS.bytes) {
    throw new ConfigError(file, [{ path: '', message: `the file is ${Buffer.byteLength(text)} bytes; a config may have at most ${CONFIG_LIMITS.bytes}` }])
  }
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true })
  const at = (path: (string | number)[]) => locate(doc, lineCounter, path)
  if (doc.errors.length) {
    throw new ConfigError(file, doc.errors.map(e => ({
      path: '', line: e.linePos?.[0].line, column: e.linePos?.[0].col, message: e.message.split('\n')[0],
    })))
  }
  const js = doc.toJS() ?? {}
  const queueCount = typeof js.queues === 'object' && js.queues !== null ? Object.keys(js.queues).length : 0
  if (queueCount > CONFIG_LIMITS.queues) {
    throw new ConfigError(file, [{ path: 'queues', ...at(['queues']), message: `${queueCount} queues; a config may have at most ${CONFIG_LIMITS.queues}` }])
  }
  const errors: ConfigIssue[] = []
  const warnings: ConfigIssue[] = []
  const issue = (path: (string | number)[], message: string, rule?: string): ConfigIssue =>
    ({ path: path.join('.'), ...at(path), message, ...(rule ? { rule } : {}) })
  const raw = Value.Default(ConfigSchema, js)
  for (const e of Value.Errors(ConfigSchema, raw)) errors.push(issue(pointer(e.path), said(e)))
  const invalid = (prefix: string) => errors.some(i => i.path === prefix || i.path.startsWith(`${prefix}.`))

  const config = raw as RawConfig
  const queues = new Map<string, QueuePolicy>()
  const objectOr = <T>(value: T) => (typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {} as T)
  for (const [name, queue] of Object.entries(objectOr(config.queues))) {
    if (invalid(`queues.${name}`) || invalid('defaults')) {
      // Said already where it is written; only a missing image is new once merged.
      if (objectOr(queue).image === undefined && objectOr(config.defaults).image === undefined) errors.push(noImage(name, issue))
      continue
    }
    // A queue's keys replace those of `defaults`; `limits` is merged key by key.
    const merged = { ...config.defaults, ...queue, limits: { ...config.defaults.limits, ...queue.limits } }
    const written = Value.Default(QueuePolicySchema, merged) as PolicyText
    const found = [...Value.Errors(QueuePolicySchema, written)]
    if (found.length) {
      errors.push(...found.map(e => (e.path === '/image' && e.value === undefined ? noImage(name, issue) : issue(['queues', name, ...pointer(e.path)], said(e)))))
      continue
    }
    const before = errors.length
    const policy = normalizePolicy(written, inBytes((path, message) => errors.push(issue(['queues', name, ...path], message))))
    if (errors.length > before) continue
    const judged = applyRules(QUEUE_RULES, policy)
    errors.push(...judged.error.map(f => issue(['queues', name, ...f.path], f.message, f.rule)))
    warnings.push(...judged.warning.map(f => issue(['queues', name, ...f.path], f.message, f.rule)))
    queues.set(name, policy)
  }
  const budget = config.images?.budget === undefined || invalid('images') ? undefined
    : inBytes((path, message) => errors.push(issue(path, message)))(['images', 'budget'], config.images.budget)
  if (!invalid('engine') && !invalid('images')) {
    const judged = applyRules(FILE_RULES, { engine: config.engine, images: config.images as Config['images'], queuesWritten: doc.has('queues'), queueCount })
    errors.push(...judged.error.map(f => issue(f.path, f.message, f.rule)))
    warnings.push(...judged.warning.map(f => issue(f.path, f.message, f.rule)))
  }
  if (errors.length) throw new ConfigError(file, errors.sort(byPlace))
  const { budget: _, ...images } = config.images
  return {
    file, engine: config.engine, log: config.log, accounting: config.accounting, torque: config.torque, gc: config.gc,
    images: { ...images, ...(budget === undefined ? {} : { budget }) }, metrics: config.metrics, queues, warnings: warnings.sort(byPlace),
  }
}

/** In the file's order: by line, then column; what has no line (the file as a whole) first. */
const byPlace = (a: ConfigIssue, b: ConfigIssue) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)

const noImage = (name: string, issue: (path: (string | number)[], message: string) => ConfigIssue) =>
  issue(['queues', name, 'image'], `no image: set queues.${name}.image or defaults.image`)

type Problem = (path: (string | number)[], message: string) => void

/** A size as bytes; one parseSize refuses (0, too large) is a problem at its path. */
const inBytes = (problem: Problem) => (path: (string | number)[], size: string): number | undefined => {
  try {
    return parseSize(size)
  } catch (err) {
    problem(path, (err as Error).message)
    return undefined
  }
}

/** The policy with its sizes in bytes, each parsed once, here; absent sizes stay absent. */
function normalizePolicy(text: PolicyText, bytes: ReturnType<typeof inBytes>): QueuePolicy {
  const { defaultMem, maxMem, ...limits } = text.limits
  const { tmpSize, shmSize, memlock, ...rest } = text
  const size = (path: (string | number)[], key: string, value: string | undefined) => {
    const parsed = value === undefined ? undefined : bytes(path, value)
    return parsed === undefined ? {} : { [key]: parsed }
  }
  return {
    ...rest,
    limits: { ...limits, ...size(['limits', 'defaultMem'], 'defaultMem', defaultMem), ...size(['limits', 'maxMem'], 'maxMem', maxMem) },
    tmpSize: bytes(['tmpSize'], tmpSize) ?? 0,
    ...size(['shmSize'], 'shmSize', shmSize),
    ...(memlock === 'unlimited' ? { memlock } : size(['memlock'], 'memlock', memlock)),
  }
}

/**
 * The schema's complaint in the admin's terms: the values a choice allows, what a pattern
 * stands for (never the pattern), and the key an unknown one was likely meant to be.
 */
function said(e: ValueError): string {
  const choices = (e.schema.anyOf as TSchema[] | undefined)?.map(s => s.const)
  if (choices?.length && choices.every(c => typeof c === 'string')) return `${JSON.stringify(e.value)} is not one of ${choices.join(', ')}`
  if ((e.type === ValueErrorType.StringPattern || e.type === ValueErrorType.String) && e.schema.expects) return `${JSON.stringify(e.value)} is not ${e.schema.expects ?? 'valid here'}`
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    const key = String(pointer(e.path).at(-1))
    if (e.schema.patternProperties) return `${JSON.stringify(key)} is not a queue name (letters, digits, _ . -)`
    const near = closest(key, Object.keys(e.schema.properties ?? {}))
    return `unknown key ${JSON.stringify(key)}${near ? `; did you mean ${near}?` : ''}`
  }
  if (e.type === ValueErrorType.ArrayMaxItems) return `more than ${e.schema.maxItems} entries`
  return e.message
}

/** The known key nearest to a misspelt one (at most 2 edits, or a third of its letters). */
function closest(key: string, known: string[]): string | undefined {
  let best: { name: string; cost: number } | undefined
  for (const name of known) {
    const cost = editDistance(key.toLowerCase(), name.toLowerCase())
    if (cost <= Math.max(2, Math.floor(name.length / 3)) && (!best || cost < best.cost)) best = { name, cost }
  }
  return best?.name
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit (volumse). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
    }
  }
  return d[a.length][b.length]
}

/** '/queues/batch/volumes/0' -> ['queues', 'batch', 'volumes', 0] */
function pointer(jsonPointer: string): (string | number)[] {
  return jsonPointer.split('/').slice(1)
    .map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map(s => (/^\d+$/.test(s) ? Number(s) : s))
}

/**
 * Where in the file's text the first of `paths` that it holds is written (a queue's key,
 * else the `defaults` one it inherits): for problems found after parsing, against the engine.
 */
export function placeOf(text: string, paths: (string | number)[][]): { path: string; line?: number; column?: number } {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter })
  const path = paths.find(p => doc.hasIn(p)) ?? paths[0]
  return { path: path.join('.'), ...locate(doc, lineCounter, path) }
}

/** Line and column of the deepest node of `path` that exists in the YAML document. */
function locate(doc: Document, lines: LineCounter, path: (string | number)[]): { line?: number; column?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true)
    if (isNode(node) && node.range) {
      const { line, col } = lines.linePos(node.range[0])
      return { line, column: col }
    }
  }
  return {}
}
