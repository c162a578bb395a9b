// docs/config.md, the reference of cbatch.yaml, made from the schema and the rules that
// check it (lib/policy/schema.ts, rules.ts): `npm run docs:config` writes it, and
// test/config-docs.ts fails when the committed file is not what this makes.
import { writeFileSync } from 'node:fs'
import type { TSchema } from '@sinclair/typebox'
import { CONFIG_LIMITS } from '../lib/policy/bounds.ts'
import { ConfigSchema, QueuePolicySchema } from '../lib/policy/schema.ts'
import { FILE_RULES, QUEUE_RULES, type Rule } from '../lib/policy/rules.ts'

export const CONFIG_DOCS = 'docs/config.md'

/** The whole reference, as committed in docs/config.md. */
export function configReference(): string {
  const sections = Object.entries(ConfigSchema.properties as Record<string, TSchema>)
    .filter(([name]) => name !== 'defaults' && name !== 'queues')
  return `# cbatch.yaml reference

<!-- Made by \`npm run docs:config\` from lib/policy/schema.ts and rules.ts: edit those, not this file. -->

The file the hooks read (\`/etc/cbatch/cbatch.yaml\`; see the README's "Configuration" for
who may own it and where it may live). \`cbatch config check FILE\` reports every problem
at once as \`FILE:LINE:COLUMN: dot.path: message\`, with \`[rule]\` when a rule below found
it, then the warnings; its JSON Schema is \`config/cbatch.schema.json\`.

A file without a \`queues\` key is refused: an empty or cut-short file would run every job
natively. \`queues: {}\` says that on purpose. A queue's keys replace those of \`defaults\`
(\`limits\` is merged key by key); a queue without an image, from itself or \`defaults\`, is
refused. Sizes are TORQUE's: \`b kb mb gb tb\`, or words \`w kw mw gw tw\` (8 bytes).

Bounds: at most ${CONFIG_LIMITS.bytes} bytes, ${CONFIG_LIMITS.queues} queues, and ${CONFIG_LIMITS.listItems} entries in any list.

## Settings of the node

| key | default | meaning |
|---|---|---|
${sections.flatMap(([name, schema]) => rows(name, schema)).join('\n')}

## Settings of a queue

Each key below may be set under \`defaults:\` (for every queue) and under \`queues.<name>:\`
(queue names: letters, digits, \`_\`, \`.\`, \`-\`). Jobs of a queue the file does not name
run natively.

| key | default | meaning |
|---|---|---|
${Object.entries(QueuePolicySchema.properties as Record<string, TSchema>).flatMap(([name, schema]) => rows(name, schema, name === 'image' ? '(required)' : undefined)).join('\n')}

## Rules

What the schema cannot say of one value alone. An error refuses the file; a warning is
obeyed, and said by \`cbatch config check\` and \`cbatch doctor\`.

| rule | applies to | severity | checks that |
|---|---|---|---|
${[...ruleRows(QUEUE_RULES, 'each queue'), ...ruleRows(FILE_RULES, 'the file')].join('\n')}
`
}

/** One row per setting; an object without a description of its own is its keys, one by one. */
function rows(path: string, schema: TSchema, fallback?: string): string[] {
  const own = `| \`${path}\` | ${fallback ?? defaultOf(schema)} | ${meaning(schema)} |`
  // An object's keys, or those of each entry of a list of objects (volumes[].source).
  const [prefix, object] = schema.type === 'array' ? [`${path}[]`, schema.items as TSchema] : [path, schema]
  if (object.type !== 'object' || !object.properties) return [own]
  const children = Object.entries(object.properties as Record<string, TSchema>).flatMap(([key, s]) => rows(`${prefix}.${key}`, s))
  return schema.description || schema.type === 'array' ? [own, ...children] : children
}

function defaultOf(schema: TSchema): string {
  const value = schema.default
  if (value === undefined || (typeof value === 'object' && value !== null && !Array.isArray(value))) return ''
  return `\`${JSON.stringify(value)}\``
}

/** The description, with what a value must be when the schema says so. */
function meaning(schema: TSchema): string {
  const choices = (schema.anyOf as TSchema[] | undefined)?.map(s => `\`${s.const}\``)
  const item = schema.items as TSchema | undefined
  const extra = [
    choices ? `one of ${choices.join(', ')}` : undefined,
    schema.expects ? `${schema.expects}` : undefined,
    item?.expects ? `each ${item.expects}` : undefined,
    schema.minimum !== undefined || schema.maximum !== undefined ? bounds(schema) : undefined,
  ].filter(Boolean)
  const text = [schema.description, extra.length ? `(${extra.join('; ')})` : undefined].filter(Boolean).join(' ')
  return text.replace(/\|/g, '\\|').replace(/</g, '&lt;').replace(/\n/g, ' ')
}

function bounds(schema: TSchema): string {
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `${schema.minimum} to ${schema.maximum}`
  return schema.minimum !== undefined ? `at least ${schema.minimum}` : `at most ${schema.maximum}`
}

function ruleRows<T>(rules: Rule<T>[], scope: string): string[] {
  return rules.map(r => `| \`${r.name}\` | ${scope} | ${r.severity} | ${r.description.replace(/\|/g, '\\|')} |`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(CONFIG_DOCS, configReference())
  process.stdout.write(`wrote ${CONFIG_DOCS}\n`)
}
