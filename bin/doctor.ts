// cbatch doctor: what on this node makes jobs fail (lib/node/doctor.ts).
import { openEngine } from '../lib/engine/open.ts'
import { printable, printableJson } from '../lib/format.ts'
import { diagnose } from '../lib/node/doctor.ts'
import { defineCommand, type OptionValues } from './command.ts'
import { configPath, NODE_OPTIONS } from './options.ts'

export const doctorCommand = defineCommand({
  name: 'doctor', summary: 'check everything on this node that makes jobs fail or run unconfined, with the fix',
  synopsis: '[options]',
  description: 'One line per check: ok, WARN or FAIL, what was found and, for the others, the fix.',
  options: NODE_OPTIONS, rootOnly: true, exits: '0 no FAIL; 1 at least one FAIL',
  examples: ['cbatch doctor', 'pdsh -w node[01-64] cbatch doctor | grep -v \' ok \''],
  run: (_, values) => doctor(values),
})

async function doctor(values: OptionValues<typeof NODE_OPTIONS>): Promise<number> {
  const findings = await diagnose({
    configPath: configPath(values), pbsHome: values['pbs-home'], engineFor: config => openEngine(config.engine),
  })
  if (values.json) process.stdout.write(`${printableJson(findings)}\n`)
  else for (const f of findings) process.stdout.write(`${printable(`${f.verdict.padEnd(4)} ${f.what}: ${f.detail}${f.fix ? ` -> ${f.fix}` : ''}`)}\n`)
  return findings.some(f => f.verdict === 'FAIL') ? 1 : 0
}
