// A real TORQUE on this host (scripts/torque/): jobs go in with qsub as real users, pbs_mom
// runs cbatch's installed hooks, and what the owner gets back is read from their files.
// Nothing here emulates pbs_mom: this is what the emulator must agree with.
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

/** A mom's engine, as scripts/torque/tier.sh configured it (Docker or Podman). */
function engineOf(node: string): { kind: 'docker' | 'podman'; socket: string } {
  const config = `/etc/cbatch-tier/${node}/cbatch.yaml`
  const engine = existsSync(config) ? (parse(readFileSync(config, 'utf8'))?.engine ?? {}) : {}
  return { kind: engine.kind ?? 'docker', socket: engine.socket ?? '/var/run/docker.sock' }
}

/** The moms of the tier (scripts/torque/tier.sh): node name, PBS_HOME, engine. */
export const MOMS = [
  { node: 'vm', pbsHome: '/var/spool/torque', ...engineOf('vm') },
  { node: 'vm2', pbsHome: '/var/spool/torque-mom2', ...engineOf('vm2') },
] as const

export const OWNER = 'cbatchtest'
export const OTHER = 'cbatchdemo'

/** Whether a TORQUE server answers here; the tier skips itself otherwise. */
export function torqueAnswers(): boolean {
  return spawnSync('qstat', ['-B'], { stdio: 'ignore' }).status === 0
}

export function idOf(user: string, flag: '-u' | '-g' = '-u'): number {
  return Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim())
}

/** Runs a command as `user`, on the host, with their groups. */
export function asUser(user: string, command: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('setpriv', [`--reuid=${idOf(user)}`, `--regid=${idOf(user, '-g')}`, '--init-groups', '--reset-env', '--', ...command],
    { encoding: 'utf8', input, cwd: '/', env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: `/home/${user}`, USER: user } })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

export interface Submitted {
  jobId: string
  dir: string
  user: string
}

export interface SubmitOptions {
  user?: string
  queue?: string
  /** `-l` value, e.g. `nodes=vm:ppn=1+vm2:ppn=1`. */
  resources?: string
  /** `-v` value. */
  vars?: string
  /** Other qsub options. */
  extra?: string[]
}

/** Submits `script` as `user` from a fresh directory of theirs; its output lands there. */
export function submit(script: string, opts: SubmitOptions = {}): Submitted {
  const user = opts.user ?? OWNER
  const base = join('/home', user, 'cbatch-tier')
  mkdirSync(base, { recursive: true, mode: 0o755 })
  chownSync(base, idOf(user), idOf(user, '-g'))
  const dir = mkdtempSync(join(base, 'job-'))
  chownSync(dir, idOf(user), idOf(user, '-g'))
  const file = join(dir, 'job.sh')
  writeFileSync(file, script, { mode: 0o755 })
  chownSync(file, idOf(user), idOf(user, '-g'))
  const args = ['-q', opts.queue ?? 'batch', '-o', join(dir, 'out'), '-e', join(dir, 'err'), '-d', dir,
    ...(opts.resources ? ['-l', opts.resources] : []), ...(opts.vars ? ['-v', opts.vars] : []), ...(opts.extra ?? []), file]
  const r = asUser(user, ['qsub', ...args])
  if (r.status !== 0 || !r.stdout.trim()) throw new Error(`qsub ${args.join(' ')} failed: ${r.stderr}`)
  return { jobId: r.stdout.trim(), dir, user }
}

/** `qstat -f` of a job as attribute -> value, or undefined once the server forgot it. */
export function jobStatus(jobId: string): Map<string, string> | undefined {
  const r = spawnSync('qstat', ['-f', jobId], { encoding: 'utf8' })
  if (r.status !== 0) return undefined
  const attributes = new Map<string, string>()
  // Long values are folded onto lines starting with a tab.
  for (const line of r.stdout.replace(/\n\t/g, '').split('\n')) {
    const m = /^\s+([\w.]+) = (.*)$/.exec(line)
    if (m) attributes.set(m[1], m[2])
  }
  return attributes
}

export interface Finished {
  exitStatus: number
  stdout: string
  stderr: string
  status: Map<string, string>
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Waits until the job completed and its output was copied back (the server keeps completed jobs: tier.sh). */
export async function finished(job: Submitted, timeoutMs = 120_000): Promise<Finished> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const status = jobStatus(job.jobId)
    if (status?.get('job_state') === 'C') {
      const read = (name: string) => {
        try {
          return readFileSync(join(job.dir, name), 'utf8')
        } catch {
          return ''
        }
      }
      return { exitStatus: Number(status.get('exit_status')), stdout: read('out'), stderr: read('err'), status }
    }
    if (Date.now() > until) {
      spawnSync('qdel', [job.jobId])
      throw new Error(`job ${job.jobId} did not finish in ${timeoutMs} ms (state ${status?.get('job_state')})`)
    }
    await sleep(500)
  }
}

/** Waits until the job runs (state R), for at most `timeoutMs`. */
export async function running(job: Submitted, timeoutMs = 60_000): Promise<Map<string, string>> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const status = jobStatus(job.jobId)
    if (status?.get('job_state') === 'R') return status
    if (Date.now() > until) throw new Error(`job ${job.jobId} is not running after ${timeoutMs} ms (state ${status?.get('job_state')})`)
    await sleep(300)
  }
}

/** Containers of cbatch's on a mom's engine, for one job (never counted over the whole engine). */
export function containersOf(jobId: string, socket: string): string[] {
  return execFileSync('docker', ['-H', `unix://${socket}`, 'ps', '-aq', '--filter', `label=cbatch.job=${jobId}`], { encoding: 'utf8' })
    .split('\n').filter(Boolean)
}

/** Until `check` holds or `timeoutMs` passed; returns whether it held. */
export async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) return false
    await sleep(500)
  }
  return true
}
