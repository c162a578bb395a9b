// Soak: many short jobs one after another leave nothing growing behind: containers,
// open descriptors, engine memory, engine disk. SOAK_JOBS sets how many: 50 in `npm test`
// (its equality checks catch a leak of one container a job), 500 with `npm run soak`.
import t from 'tap'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { emulateJob } from '../emulator/emulator.ts'
import { listenerOf } from '../lib/host/grantable.ts'
import { ENGINE_SOCKET, engineCli, TEST_ENGINE } from './helpers/engine.ts'
import { sharedDir, testConfig, TEST_USER } from './helpers/jobs.ts'

const JOBS = Number(process.env.SOAK_JOBS ?? 50)
// About a second and a half a job on a small machine: well past tap's default timeout.
t.setTimeout(40 * 60 * 1000)
const shared = sharedDir()
t.teardown(shared.dispose)
const config = testConfig(shared.path, `accounting: { file: ${shared.path}/accounting.jsonl }\n`)
const script = join(shared.path, 'short.sh')
writeFileSync(script, '#!/bin/sh\necho "$PBS_JOBID"\n')

/** Containers left of these jobs (another test's orphans may go meanwhile: prologues collect them). */
const containersOf = (jobs: Set<string>) => engineCli(['ps', '-a', '--filter', 'label=cbatch.job', '--format', '{{.Label "cbatch.job"}}'])
  .split('\n').filter(id => jobs.has(id)).length
const openFds = () => readdirSync('/proc/self/fd').length
/** The memory of the process serving the engine's socket (dockerd, or Podman's service). */
const engineRssMiB = () => {
  const pid = listenerOf(ENGINE_SOCKET)
  if (!pid) throw new Error(`nothing serves ${ENGINE_SOCKET}`)
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024
}
/** Entries of the engine's container and layer directories. */
const engineDirs = () => (TEST_ENGINE === 'podman' ? ['containers/storage/overlay-containers', 'containers/storage/overlay'] : ['docker/containers', 'docker/overlay2'])
  .map(d => readdirSync(`/var/lib/${d}`).length)
const job = () => emulateJob({ script, user: TEST_USER, queue: 'batch', resources: 'nodes=1:ppn=1', hooksDir: join(import.meta.dirname, '../dist'), config })

t.test(`${JOBS} short jobs in a row`, async t => {
  for (let i = 0; i < 10; i++) await job() // warm up: the engine's caches settle
  const before = { fds: openFds(), rss: engineRssMiB(), dirs: engineDirs() }
  let failed = 0
  const ran = new Set<string>()
  for (let i = 0; i < JOBS; i++) {
    const j = await job()
    ran.add(j.jobId)
    if (j.exitStatus !== 0 || !j.stdout.startsWith(`${j.jobId}\n`)) failed++
  }
  // The last jobs' containers may still be with their detached remover (hooks/remover.ts).
  for (const until = Date.now() + 60_000; containersOf(ran) && Date.now() < until;) await new Promise(r => setTimeout(r, 100))
  const after = { containers: containersOf(ran), fds: openFds(), rss: engineRssMiB(), dirs: engineDirs() }
  t.equal(failed, 0, 'every job ran and printed its id')
  t.equal(after.containers, 0, 'no container of these jobs left')
  // At most as many: other tests' orphans may have gone meanwhile, one left a job would show.
  t.ok(after.dirs.every((n, i) => n <= before.dirs[i]), `no container or layer directory left in the engine's data root: ${before.dirs} -> ${after.dirs}`)
  t.ok(after.fds <= before.fds, `open descriptors: ${before.fds} -> ${after.fds}`)
  t.ok(after.rss - before.rss < 40, `engine memory: ${before.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MiB`)
  t.equal(readFileSync(`${shared.path}/accounting.jsonl`, 'utf8').split('\n').filter(Boolean).length, JOBS + 10, 'one accounting line per job')
})
