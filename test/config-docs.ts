// docs/config.md is made from the schema and the rules: the committed file must be what
// scripts/config-docs.ts makes now, so a setting or rule cannot change without its docs.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { CONFIG_DOCS, configReference } from '../scripts/config-docs.ts'
import { QueuePolicySchema } from '../lib/policy/schema.ts'
import { FILE_RULES, QUEUE_RULES } from '../lib/policy/rules.ts'

t.test('docs/config.md is the generated reference (npm run docs:config)', async t => {
  t.equal(readFileSync(CONFIG_DOCS, 'utf8'), configReference(), 'regenerate with npm run docs:config')
})

t.test('the reference names every queue setting and every rule', async t => {
  const text = configReference()
  for (const key of Object.keys(QueuePolicySchema.properties)) t.match(text, `\n| \`${key}`, key)
  for (const rule of [...QUEUE_RULES, ...FILE_RULES]) t.match(text, `| \`${rule.name}\` |`, rule.name)
  t.match(text, '| `image` | (required) |')
  t.match(text, '| `volumes[].source` |')
  t.notMatch(text, /\^\/|\\\\d/, 'no raw pattern')
})
