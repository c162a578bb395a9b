// pbs_mom's $node_check_script: a line starting with ERROR marks this node down in
// pbs_server until the check passes again. A node that cannot run container jobs (config
// unusable, engine unreachable, a queue's image missing where it may not be pulled, a
// queue's runtime the engine does not have or gives no container, a scratch base where
// others could change or make it first) must stop taking jobs: pbs_sched would otherwise
// re-run each requeued job on it at once, forever (docs/torque-contract.md, "When a
// prologue fails"). Silent when all is well.
import { join } from 'node:path'
import { openEngine } from '../lib/engine/open.ts'
import { checkScratchBase } from '../lib/host/scratch.ts'
import { printable } from '../lib/format.ts'
import { requeueProblem } from '../lib/node/requeues.ts'
import { missingRuntimes, rememberingVerdicts, RUNTIME_VERDICTS } from '../lib/node/runtimes.ts'
import { describeIssue } from '../lib/errors.ts'
import { runHook } from './run.ts'

/** pbs_mom reads the check's stdout: each problem on an ERROR line. */
const sayError = (problem: string) => process.stdout.write(`ERROR cbatch: ${printable(problem)}\n`)

void runHook('nodecheck', () => undefined, async ({ batch, config, log }) => {
  // pbs_mom waits for the check: a hung engine must not hold it long.
  const engine = openEngine({ ...config.engine, timeout: Math.min(config.engine.timeout, 10) })
  await engine.ping()
  const problems: string[] = []
  // Its line is public (pbsnodes): counts only; the node log has the jobs and the reasons.
  const streak = requeueProblem(batch.stateDir, { log })
  if (streak) problems.push(streak)
  for (const [name, policy] of config.queues) {
    if (policy.pull === 'never' && !await engine.hasImage(policy.image)) problems.push(`queue ${name}: image ${policy.image} is not on this node (pull: never)`)
    if (policy.scratch) {
      try {
        checkScratchBase(policy.scratch.base)
      } catch (err) {
        problems.push(`queue ${name}: ${(err as Error).message}`)
      }
    }
  }
  // A queue whose runtime the engine lacks would have every job of it refused here.
  if ([...config.queues.values()].some(q => q.runtime !== undefined)) {
    const judge = rememberingVerdicts(engine, join(batch.stateDir, RUNTIME_VERDICTS))
    for (const issue of await missingRuntimes(config, judge)) problems.push(describeIssue(config.file, issue))
  }
  problems.forEach(sayError)
  return problems.length ? 1 : 0
}, { onFailure: sayError })
