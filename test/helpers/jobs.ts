// Runs real jobs through the built `cbatch run` (the pbs_mom emulator) against the real engine.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { parseConfig } from '../../lib/policy/parse.ts'
import { DEFAULT_PBS_HOME, hooksFor, writeJobFile, type EmulatedJob } from '../../emulator/emulator.ts'
import { engineCli, testEngine, withTestEngine } from './engine.ts'
import { cleanupJob } from '../../lib/job/epilogue.ts'
import { prepareJob } from '../../lib/job/prologue.ts'
import { jobContext } from '../../lib/torque/job.ts'
import { pbsMom } from '../../lib/torque/mom.ts'
import { jobFilePrefix } from '../../lib/torque/jobfile.ts'

export const CBATCH = join(import.meta.dirname, '../../dist/cbatch')
export const TEST_USER = 'cbatchtest'
/** A user only NSS knows (libnss-extrausers), as LDAP/SSSD users are: in no file of /etc. */
export const NSS_USER = 'cbatchnss'
export const TEST_IMAGE = 'cbatch-test/busybox:latest'
export const REGISTRY_IMAGE = `127.0.0.1:5000/${TEST_IMAGE}`

export interface JobRun {
  job: EmulatedJob
  /** Exit status of `cbatch run` itself. */
  status: number | null
  stderr: string
}

export interface JobOptions {
  config: string
  queue?: string
  resources?: string
  args?: string[]
  vars?: Record<string, string>
  /** Run as sub-job of an array. */
  arrayIndex?: number
  /** qsub -j oe. */
  join?: boolean
  /** Run as under a TORQUE built with cgroups, with this cpuset. */
  torqueCgroups?: string
  /** Starts of a job whose prologue requeues it (pbs_sched's loop). */
  attempts?: number
  /** The job's owner (default TEST_USER). */
  user?: string
  /** PBS_O_WORKDIR (default: a directory of the owner's). */
  workDir?: string
  /** TM tasks started while the job runs, as pbsdsh would (command lines split at spaces). */
  tasks?: string[]
  /** Called with the running `cbatch run` process (to signal it). */
  onStart?: (pid: number) => void
}

/** What the prologue knows beyond its arguments, for jobs made through the library. */
export const PROLOGUE = { batch: pbsMom(join(DEFAULT_PBS_HOME, 'mom_priv')) }

/** A directory every user may write to, removed with `t.teardown(dispose)`. */
export function sharedDir(): { path: string; dispose: () => void } {
  const path = mkdtempSync(join(tmpdir(), 'cbatch-it-'))
  chmodSync(path, 0o1777)
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) }
}

export function writeConfig(dir: string, yaml: string): string {
  const file = join(dir, `cbatch-${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(file, withTestEngine(yaml))
  return file
}

/** The standard test config: queue `batch` on the local busybox image. */
export function testConfig(dir: string, extra = ''): string {
  return writeConfig(dir, `log: { file: ${dir}/cbatch.log }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
${extra}`)
}

/** The tests' name for a queue no test config lists: its jobs run natively. */
export const UNMANAGED_QUEUE = 'unmanaged'

export async function runJob(script: string, opts: JobOptions): Promise<JobRun> {
  // Where the owner ran qsub: their own directory, as PBS_O_WORKDIR.
  const dir = mkdtempSync(join(tmpdir(), 'cbatch-script-'))
  const user = opts.user ?? TEST_USER
  chownSync(dir, Number(hostId('-u', user)), Number(hostId('-g', user)))
  const file = join(dir, 'job.sh')
  writeFileSync(file, script, { mode: 0o644 })
  const args = ['run', file, ...(opts.args ?? []), '--json', '--user', user, '--config', opts.config,
    '--queue', opts.queue ?? 'batch', '--resources', opts.resources ?? 'nodes=1:ppn=1',
    // The tests' queue that cbatch does not manage, run natively as pbs_mom runs it.
    ...(opts.queue === UNMANAGED_QUEUE ? ['--native-queue'] : [])]
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push('-v', `${k}=${v}`)
  for (const task of opts.tasks ?? []) args.push('--task', task)
  if (opts.workDir) args.push('--workdir', opts.workDir)
  if (opts.arrayIndex !== undefined) args.push('--array-index', String(opts.arrayIndex))
  if (opts.attempts !== undefined) args.push('--attempts', String(opts.attempts))
  if (opts.torqueCgroups !== undefined) args.push('--torque-cgroups', opts.torqueCgroups)
  if (opts.join) args.push('--join')
  try {
    const child = spawn(CBATCH, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
    opts.onStart?.(child.pid!)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => (stdout += d))
    child.stderr.on('data', d => (stderr += d))
    const status = await new Promise<number | null>(r => child.on('close', code => r(code)))
    if (!stdout) throw new Error(`cbatch run printed no record (exit ${status}): ${stderr}`)
    return { job: JSON.parse(stdout), status, stderr }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * The prologue refused the job: it printed why into the job's .ER and exited 0, and the
 * starter ran nothing (lib/job/refusal.ts), so the owner gets the reason.
 */
export function refused(job: EmulatedJob): boolean {
  return job.prologue.status === 0 && job.exitStatus === 125 && job.stderr.startsWith('cbatch: ')
}

/** Containers of the engine carrying the job's label (any state). */
export function containersOf(jobId: string): string[] {
  return engineCli(['ps', '-aq', '--filter', `label=cbatch.job=${jobId}`]).split('\n').filter(Boolean)
}

/** The job's containers once those its epilogue left to the detached remover (hooks/remover.ts) had `ms` to go. */
export async function containersLeft(jobId: string, ms = 60_000): Promise<string[]> {
  for (const until = Date.now() + ms; ; await new Promise(r => setTimeout(r, 100))) {
    const left = containersOf(jobId)
    if (!left.length || Date.now() > until) return left
  }
}

/** A uid and gid no account has: someone other than root, for unit tests that need no NSS. */
export const SOMEONE = { uid: 4242, gid: 4242 }

export function hostId(flag: '-u' | '-g' | '-G', user = TEST_USER): string {
  return execFileSync('id', [flag, user], { encoding: 'utf8' }).trim()
}

/** Runs one built hook directly, as pbs_mom would exec it, installed to read `config` (for the pbs_mom of `pbsHome`). */
export function runHook(name: 'prologue' | 'jobstarter' | 'epilogue', args: string[],
  { env, config, input = '', pbsHome }: { env: NodeJS.ProcessEnv; config: string; input?: string; pbsHome?: string }) {
  const hook = join(hooksFor(join(import.meta.dirname, '../../dist'), config, pbsHome), name)
  const result = spawnSync(hook, args, { input, encoding: 'utf8', env, cwd: '/' })
  // As pbs_mom does once the epilogue ran (and the obit went): it forgets the job, and the
  // epilogue's detached remover, waiting for that, removes the container.
  if (name === 'epilogue' && args[0]) rmSync(join(pbsHome ?? DEFAULT_PBS_HOME, 'mom_priv/jobs', `${jobFilePrefix(args[0])}.JB`), { force: true })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/**
 * A job as the prologue leaves it, made through the library: its container on the real
 * engine and pbs_mom's job file; both go at the end of the test.
 */
export async function preparedJob(t: Test, jobId: string, configYaml: string, queue = 'batch',
  { user = TEST_USER, known = true }: { user?: string; known?: boolean } = {}): Promise<void> {
  const engine = testEngine({ pullTimeoutMs: 30_000 })
  t.teardown(() => cleanupJob({ jobId, user, queue, exitStatus: 0, momPriv: PROLOGUE.batch.stateDir }, engine))
  await prepareJob(jobContext({ jobId, user, group: '', jobName: 'j', resources: '', queue, account: '' }, {}), parseConfig(withTestEngine(configYaml)), engine, PROLOGUE)
  if (!known) return // an orphan: pbs_mom has no file of it
  const jobFile = recordJob(jobId, queue, user)
  t.teardown(() => rmSync(jobFile, { force: true }))
}

/** The secret cookie recordJob gives a job: its job shell and tasks must show it (PBS_JOBCOOKIE). */
export function cookieOf(jobId: string): string {
  return createHash('sha256').update(jobId).digest('hex').slice(0, 32).toUpperCase()
}

/** pbs_mom's record of a job (its .JB) in the emulator's PBS_HOME, for hooks run directly. */
export function recordJob(jobId: string, queue = 'batch', user = TEST_USER): string {
  return writeJobFile(DEFAULT_PBS_HOME, {
    jobId, queue, group: user, resources: '', variables: {}, cookie: cookieOf(jobId),
    owner: { name: user, uid: Number(hostId('-u', user)), gid: Number(hostId('-g', user)) },
  })
}
