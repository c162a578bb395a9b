// A sister's guard, left by prologue.parallel (hooks/prologue.ts) in the background for the
// job's life: pbs_mom runs no epilogue.parallel for a job it aborts (when the mother
// superior's prologue fails, each try of the job) or forgets: once the job file is gone (or
// never came), the guard runs the installed epilogue.parallel itself, for its container only
// (CBATCH_SISTER_CONTAINER: hooks/epilogue.ts then touches nothing of a later try). It is
// busybox sh and sleep, not node, and leaves the job's cgroups (it outlives them).
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { jobFilePrefix } from './jobfile.ts'

export interface GuardTiming {
  /** Seconds the guard waits for the job file once its prologue.parallel ended (a sister has none before). */
  jobFileWait: number
  /** Seconds between its looks at the job file. */
  poll: number
}

export const GUARD_TIMING: GuardTiming = { jobFileWait: 10, poll: 3 }

/**
 * The guard's program. Arguments: the jobs directory, the job's file prefix, the hooks'
 * directory, the pid of the prologue.parallel that started it, then pbs_mom's 8 prologue
 * arguments. The job counts as known while its `.JB` or the `.JC` of a job_save under way is
 * there (pbs_mom's job_save unlinks the `.JB` before it links the new copy in its place), and
 * as gone only when neither is there on two looks at least a second apart (jobfile.ts
 * jobFilesGone, for the same reason). Its wait for the job file starts only once its
 * prologue.parallel has ended: pbs_mom writes a sister's job file after that.
 */
export function sisterGuardScript({ jobFileWait, poll }: GuardTiming = GUARD_TIMING): string {
  return `sed -n 's|^[0-9]*:\\([^:]*\\):/torque/.*|\\1|p' /proc/self/cgroup | while read -r c; do echo $$ >"/sys/fs/cgroup/\${c#name=}/cgroup.procs"; done 2>/dev/null
jobs=$1 prefix=$2 hooks=$3 parent=$4; shift 4
ppid() { read -r s </proc/$$/stat; s=\${s##*") "}; s=\${s#* }; echo "\${s%% *}"; }
while [ "$(ppid)" = "$parent" ]; do sleep 1; done
known() { for f in "$jobs/$prefix".JB "$jobs/$prefix".JC "$jobs/$prefix"[0-9]*.JB "$jobs/$prefix"[0-9]*.JC; do [ -e "$f" ] && return 0; done; return 1; }
gone() { known && return 1; sleep 1; ! known; }
i=0; until known || [ $i -ge ${jobFileWait} ]; do sleep 1; i=$((i + 1)); done
until gone; do sleep ${poll}; done
exec "$hooks/epilogue.parallel" "$1" "$2" "$3" "$4" 0 "$5" "" "$6" "$7" 0 "$8"`
}

export interface GuardRequest {
  /** This pbs_mom's mom_priv. */
  momPriv: string
  /** Where the installed hooks are (epilogue.parallel among them). */
  hooksDir: string
  /** The container the guard removes, and only it. */
  containerId: string
  /** pbs_mom's prologue arguments: job id, user, group, job name, resources, queue, account, script path. */
  args: string[]
  /** The process whose end the guard waits for before it looks for the job file: the prologue itself. */
  parent?: number
  timing?: GuardTiming
  /** The statically linked busybox the guard runs on. */
  busybox?: string
  /** Told when the guard could not be started (the prologue goes on: the job runs without it). */
  onError: (err: Error) => void
}

/** Starts the guard, detached; resolves once it runs, or once starting it failed (told to onError). */
export function guardSister(req: GuardRequest): Promise<void> {
  const [jobId, user, group, jobName, resources, queue, account, scriptPath] = req.args
  return new Promise(resolve => {
    let child
    try {
      child = spawn(req.busybox ?? '/bin/busybox', ['sh', '-c', sisterGuardScript(req.timing), 'cbatch-guard', join(req.momPriv, 'jobs'), jobFilePrefix(jobId),
        req.hooksDir, String(req.parent ?? process.pid), jobId, user, group, jobName, resources, queue, account, scriptPath ?? ''],
      { detached: true, stdio: 'ignore', cwd: '/', env: { PATH: '/bin:/usr/bin', CBATCH_SISTER_CONTAINER: req.containerId } })
    } catch (err) {
      req.onError(err as Error)
      resolve()
      return
    }
    child.on('error', err => {
      req.onError(err)
      resolve()
    })
    child.on('spawn', () => resolve())
    child.unref()
  })
}
