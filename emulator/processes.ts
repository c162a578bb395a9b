// The programs pbs_mom starts for a job, as the processes pbs_mom makes of them: the root
// scripts (prologue and epilogue family) with its permission check and alarm, the job
// starter with the job's rlimits, stdin, walltime and kill sequence, and TM tasks.
import { execFileSync, spawn, type StdioOptions } from 'node:child_process'
import { closeSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { constants } from 'node:os'
import { parentOf, signalSession } from '../lib/host/proc.ts'
import type { Rlimit } from './limits.ts'
import { openOutputs } from './output.ts'

export interface HookRun {
  /** Exit code as pbs_mom sees it: the code, 256+signal when killed, -1 permission, -4 timeout. */
  status: number
  /** How long it ran, milliseconds. */
  ms: number
}

const PERMISSION_DENIED = -1
const TIMED_OUT = -4
const WALLTIME_KILLED = -11

/** The environment of root's own children: fixed, never the job's (docs/security.md, rule 1c). */
export const ROOT_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }

/** Runs a spawn where pbs_mom would start the process (the job's cgroups, or as it is). */
type Inside = <T>(start: () => T) => T

/** A program pbs_mom starts: its argv, environment and directory, the files its stdout and stderr go to. */
export interface Launch {
  path: string
  args: string[]
  env: NodeJS.ProcessEnv
  cwd: string
  files: { out: string; err: string }
  /** Starts it inside the job's cgroups (pbs_mom built with cgroups). */
  inside?: Inside
}

/**
 * A root script of the prologue/epilogue family, with pbs_mom's permission check and alarm;
 * `meanwhile` is what pbs_mom does 200 ms after starting it (or once it ended, if sooner).
 */
export async function runScript(launch: Launch, { alarmSeconds, meanwhile }: { alarmSeconds: number; meanwhile?: () => void }): Promise<HookRun> {
  let done = !meanwhile
  const once = () => {
    if (!done) meanwhile!()
    done = true
  }
  const late = setTimeout(once, 200)
  try {
    return await runChecked(launch, alarmSeconds)
  } finally {
    clearTimeout(late)
    once()
  }
}

async function runChecked({ path, args, env, cwd, files, inside = start => start() }: Launch, alarmSeconds: number): Promise<HookRun> {
  let mode: ReturnType<typeof statSync>
  try {
    mode = statSync(path)
  } catch {
    return { status: 0, ms: 0 } // a missing script counts as success
  }
  const owned = mode.uid === 0 && mode.isFile() && (mode.mode & 0o500) === 0o500 && (mode.mode & 0o022) === 0
  if (!owned) return { status: PERMISSION_DENIED, ms: 0 }
  const fds = openOutputs(files)
  try {
    const started = performance.now()
    // pbs_mom's umask: 0077 for the mother superior's prologue and epilogue, 0022 for a
    // sister's (contract, "How the prologues and epilogues run").
    const mask = path.endsWith('.parallel') ? 0o022 : 0o077
    const child = inside(() => withUmask(mask, () => spawn(path, args, { cwd, env, stdio: ['ignore', fds[0], fds[1]], detached: true })))
    let timedOut = false
    const alarm = setTimeout(() => {
      timedOut = true
      signalSession(child.pid!, 'SIGKILL')
    }, (alarmSeconds - 10) * 1000)
    const { code } = await exited(child)
    clearTimeout(alarm)
    const ms = performance.now() - started
    if (timedOut) return { status: TIMED_OUT, ms }
    return { status: code ?? 0, ms } // killed by a signal, not the alarm: the job runs
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/**
 * What pbs_mom does between fork and exec of a batch job's starter, with what every node
 * has (busybox-static, util-linux): the child is statically linked busybox, already with the
 * job's environment as pbs_mom's child has it (it reads none of it: the wrappers run so
 * too), holding on fd 3 while root sets the job's rlimits on it (prlimit --pid, ROOT_ENV);
 * then it execs the starter by its absolute path, in the session it leads. Nothing of the
 * job reaches a dynamically linked root process or a command line others can read.
 */
const HOLD = 'read -r _ <&3 && exec "$0" "$@" 3<&-'

/** prlimit's option for each rlimit pbs_mom sets (momLimits). */
const PRLIMIT_OPTIONS: Record<string, string> = { RLIMIT_CPU: 'cpu', RLIMIT_FSIZE: 'fsize', RLIMIT_DATA: 'data', RLIMIT_RSS: 'rss', RLIMIT_AS: 'as' }

/**
 * Sets `limits` on the child `pid` held by HOLD, then lets it exec through `hold`; a child it
 * cannot limit is killed, with the reason written to the fd `err`.
 */
function release({ pid, limits, hold, err }: { pid: number; limits: Rlimit[]; hold: NodeJS.WritableStream; err: number }): void {
  try {
    // A hard limit of -1 is left as it is: only the soft one is set (momLimits, no CAP_SYS_RESOURCE).
    const options = limits.map(([name, soft, hard]) => `--${PRLIMIT_OPTIONS[name]}=${soft}:${hard === -1 ? '' : hard}`)
    if (options.length) execFileSync('/usr/bin/prlimit', ['--pid', String(pid), ...options], { env: ROOT_ENV, stdio: ['ignore', 'ignore', 'pipe'] })
    hold.end('go\n')
  } catch (error) {
    writeFileSync(err, `cbatch run: cannot set the job's rlimits on its starter: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}\n`)
    process.kill(pid, 'SIGKILL')
  }
}

/**
 * The same for an interactive job (qsub -I), whose starter gets a new session on a new pty:
 * python3 (dynamically linked, so with ROOT_ENV and isolated: -I -S) reads the starter's argv,
 * environment and limits as JSON from fd 3, forks it on the pty and relays the master.
 */
const LAUNCHER = `
import json, os, pty, resource, select, signal, sys
with os.fdopen(3, 'rb') as f:
    spec = json.loads(f.read())
def start():
    for name, soft, hard in spec['limits']:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    os.execve(spec['argv'][0], spec['argv'], spec['env'])
pid, master = pty.fork()
if pid == 0:
    start()
inputs = [0, master]
while True:
    for fd in select.select(inputs, [], [])[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b''
        if fd == master:
            if not data:
                inputs = []
                break
            os.write(1, data)
        elif data:
            os.write(master, data)
        else:
            inputs.remove(0)
    if not inputs:
        break
status = os.waitpid(pid, 0)[1]
if os.WIFSIGNALED(status):
    if os.WTERMSIG(status) != signal.SIGKILL:
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
`

/**
 * The job starter, privileged, as session leader: batch jobs get the script line on a stdin
 * pipe (HOLD); interactive ones a terminal (LAUNCHER holds the pty master).
 */
export async function runStarter({ path, args, env, cwd, files, inside = start => start() }: Launch,
  { input, interactive, walltime, killDelay, cancel, limits }:
  { input: string; interactive: boolean; walltime?: number; killDelay: number; cancel?: AbortSignal; limits: Rlimit[] }): Promise<number> {
  const fds = openOutputs(files)
  try {
    // pbs_mom's umask and the job's rlimits, set on the starter before exec.
    const stdio: StdioOptions = ['pipe', fds[0], fds[1], 'pipe']
    const child = inside(() => withUmask(0o077, () => (interactive
      ? spawn('/usr/bin/python3', ['-I', '-S', '-c', LAUNCHER], { cwd, env: ROOT_ENV, stdio, detached: true })
      : spawn('/bin/busybox', ['sh', '-c', HOLD, path, ...args], { cwd, env, stdio, detached: true }))))
    const control = child.stdio[3] as NodeJS.WritableStream
    control.on('error', () => undefined) // a launcher that died first: its exit says so
    if (interactive) control.end(JSON.stringify({ argv: [path, ...args], env, limits }))
    else if (child.pid !== undefined) release({ pid: child.pid, limits, hold: control, err: fds[1] })
    child.stdin!.on('error', () => undefined) // a job that never reads its stdin
    child.stdin!.end(input)
    // pbs_mom signals every process of the job's session: the starter leads it.
    const session = () => (interactive ? childOf(child.pid!) : child.pid!)
    const timers: NodeJS.Timeout[] = []
    let walltimeKilled = false
    const kill = () => {
      signalSession(session(), 'SIGTERM')
      timers.push(setTimeout(() => signalSession(session(), 'SIGKILL'), killDelay * 1000))
    }
    if (walltime !== undefined) {
      timers.push(setTimeout(() => {
        walltimeKilled = true
        writeFileSync(fds[1], `=>> PBS: job killed: walltime ${walltime + 1} exceeded limit ${walltime}\n`)
        kill()
      }, walltime * 1000))
    }
    cancel?.addEventListener('abort', kill, { once: true })
    const { code, signal } = await exited(child)
    timers.forEach(clearTimeout)
    cancel?.removeEventListener('abort', kill)
    if (walltimeKilled) return WALLTIME_KILLED
    return code ?? 256 + constants.signals[signal!]
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/**
 * A TM task through the starter `path`: its own argv (`args`), stdin /dev/null, output into
 * the job's, session leader, cwd the owner's home.
 */
export function runTask({ path, args, env, cwd, files }: Omit<Launch, 'inside'>): { pid: number; status: Promise<number> } {
  const fds = openOutputs(files)
  try {
    const child = withUmask(0o077, () => spawn(path, args, { cwd, env, argv0: path, stdio: ['ignore', fds[0], fds[1]], detached: true }))
    const status = exited(child).then(({ code, signal }) => code ?? 256 + constants.signals[signal!])
    return { pid: child.pid!, status }
  } finally {
    new Set(fds).forEach(closeSync)
  }
}

/** Runs `start` (a spawn) with the process umask `mask`: the child inherits it, as from pbs_mom. */
function withUmask<T>(mask: number, start: () => T): T {
  const old = process.umask(mask)
  try {
    return start()
  } finally {
    process.umask(old)
  }
}

/** The child of `pid` (the starter under LAUNCHER), or 0. */
function childOf(pid: number): number {
  for (const entry of readdirSync('/proc')) {
    try {
      if (/^\d+$/.test(entry) && parentOf(readFileSync(`/proc/${entry}/stat`, 'utf8')) === pid) return Number(entry)
    } catch {
      // ended meanwhile
    }
  }
  return 0
}

function exited(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve({ code, signal }))
  })
}
