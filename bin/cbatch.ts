// cbatch: the command-line face of the package.
//   cbatch run SCRIPT [--user U] [--queue Q] [--resources R] [--config F] [-v VAR=value]... [--json]
// runs one job the way pbs_mom would on this node (see lib/emulator.ts).
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { emulateJob } from '../lib/emulator.ts'
import { CbatchError } from '../lib/errors.ts'

const USAGE = `usage: cbatch run SCRIPT [options]
  --user USER         job owner (default: $SUDO_USER)
  --queue QUEUE       queue (default: batch)
  --resources LIST    Resource_List, e.g. nodes=1:ppn=2,mem=1gb,walltime=00:10:00
  --config FILE       cbatch.yaml (default: /etc/cbatch/cbatch.yaml)
  -v, --var VAR=VAL   a job variable, as qsub -v (repeatable)
  --json              print the job's record as JSON instead of its output
  --keep              keep the emulated PBS_HOME for inspection`

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      user: { type: 'string' }, queue: { type: 'string', default: 'batch' },
      resources: { type: 'string', default: 'nodes=1:ppn=1' }, config: { type: 'string' },
      var: { type: 'string', short: 'v', multiple: true }, json: { type: 'boolean' },
      keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  })
  const [command, script, ...scriptArgs] = positionals
  if (values.help || command !== 'run' || !script) {
    process.stderr.write(`${USAGE}\n`)
    return values.help ? 0 : 64
  }
  if (process.getuid?.() !== 0) throw new Error('cbatch run must run as root, like pbs_mom')
  const user = values.user ?? process.env.SUDO_USER
  if (!user) throw new Error('say which user owns the job: --user USER')
  const variables = Object.fromEntries((values.var ?? []).map(v => {
    const eq = v.indexOf('=')
    if (eq <= 0) throw new Error(`-v ${v}: expected VAR=value`)
    return [v.slice(0, eq), v.slice(eq + 1)]
  }))
  const cancel = new AbortController()
  // Ctrl-C or kill of `cbatch run` is a qdel of the job.
  for (const s of ['SIGINT', 'SIGTERM'] as const) process.on(s, () => cancel.abort())
  const job = await emulateJob({
    script: resolve(script), scriptArgs, user, queue: values.queue!, resources: values.resources!,
    config: values.config && resolve(values.config), variables,
    hooksDir: dirname(process.argv[1]), cancel: cancel.signal, keep: values.keep,
  })
  if (values.json) {
    process.stdout.write(`${JSON.stringify(job)}\n`)
  } else {
    process.stdout.write(job.stdout)
    process.stderr.write(job.stderr)
  }
  if (job.outcome !== 'ran') {
    process.stderr.write(`cbatch run: prologue exited ${job.prologue.status}: job ${job.outcome}\n`)
    return 125
  }
  // 256+signal (killed) and negative TORQUE codes do not fit an exit code.
  const status = job.exitStatus!
  return status > 255 ? 128 + (status - 256) : status < 0 ? 125 : status
}

main(process.argv.slice(2)).then(code => process.exit(code), err => {
  process.stderr.write(`cbatch: ${err instanceof CbatchError ? err.userMessage : (err as Error).message}\n`)
  process.exit(125)
})
