// The small /bin/busybox sh programs pbs_mom runs as its prologue, job starter and epilogue.
// pbs_mom runs them as root among variables a job owner may set (qsub -v): the wrapper is
// statically linked busybox, so no dynamic loader reads LD_PRELOAD or its kin; node starts
// with an empty environment, so none of them (NODE_OPTIONS…) changes how it runs, and reads
// the real one from fd 3 as data. What cbatch itself obeys (the config file) is written
// here, by root, never taken from the job.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { replaceFile } from '../lib/host/trusted.ts'
import { STARTER_NEEDS } from '../lib/torque/rlimits.ts'
import { WRAPPED_HOOKS, type Hook } from '../lib/torque/hooks.ts'

export interface WrapperOptions {
  /** The node binary, by absolute path. */
  node: string
  /** The config file the hooks read. */
  config: string
  /**
   * Where the wrapper is not in mom_priv beside its bundles (the emulator): this pbs_mom's
   * mom_priv and the bundles' directory. Installed, both follow from the wrapper's own path,
   * which pbs_mom chose: `mom_priv/<hook>` and `mom_priv/cbatch.d`.
   */
  elsewhere?: { momPriv: string; bundles: string }
}

const OWN_DIR = '"${0%/*}"'

// A TORQUE built with cgroups starts the job starter in the job's memory cgroup, whose
// limit is the job's `mem`: node would take tens of MB of it from the job's container below.
// The starter leaves it for pbs_mom's before node starts; a job it runs natively is put back.
const LEAVE_JOB_MEMORY_CGROUP = `job_memcg=$(/bin/busybox sed -n 's|^[0-9]*:[a-z,]*memory[a-z,]*:\\(/torque/[^/]*\\)$|\\1|p' /proc/self/cgroup)
if [ -n "$job_memcg" ]; then
  mom_memcg=$(/bin/busybox sed -n 's|^[0-9]*:[a-z,]*memory[a-z,]*:||p' /proc/$PPID/cgroup)
  case "$mom_memcg" in
    "$job_memcg"|"$job_memcg"/*) job_memcg="" ;;
    *) echo $$ > "/sys/fs/cgroup/memory$mom_memcg/cgroup.procs" 2>/dev/null || job_memcg="" ;;
  esac
fi
`

// Where root cannot lift a limit pbs_mom set (no CAP_SYS_RESOURCE: real nodes have it), a
// job's small vmem or mem would hold node too, which then dies at start ("Failed to
// reserve virtual memory for CodeRange") or in its heap. The owner is told why instead.
const STARTER_LIMITS = `need() {
  have=$(ulimit -S -$1)
  [ "$have" = unlimited ] || [ "$have" -ge "$2" ] || {
    echo "cbatch: the job's $3 ($((have / 1024)) MiB) also limits cbatch's job starter, which needs $(($2 / 1024)) MiB, and root on this node cannot lift it (it lacks CAP_SYS_RESOURCE): ask for at least $(($2 / 1024))mb of $3, or none, or ask the admin to fix the node" >&2
    exit 125
  }
}
need v ${STARTER_NEEDS.vmem} vmem
need d ${STARTER_NEEDS.mem} mem
`

export function hookWrapper(hook: Hook['name'], { node, config, elsewhere }: WrapperOptions): string {
  const paths = { node, config, ...elsewhere }
  for (const [what, value] of Object.entries(paths)) {
    if (!/^\/[^'\0-\x1f]*$/.test(value)) throw new Error(`${what} ${JSON.stringify(value)}: an absolute path without quotes or control characters`)
  }
  const momPriv = elsewhere ? `'${elsewhere.momPriv}'` : OWN_DIR
  const loader = elsewhere ? `'${elsewhere.bundles}/load.cjs'` : `"\${0%/*}/cbatch.d/load.cjs"`
  const starter = hook === 'jobstarter' ? STARTER_LIMITS + LEAVE_JOB_MEMORY_CGROUP : ''
  return `#!/bin/busybox sh
# cbatch ${hook} hook for pbs_mom (see the cbatch README)
# pbs_mom sets the job's limits (vmem, mem, pcput, file) on the job starter: they are the
# job's, handed on to it, while node itself runs without them (root may raise its own).
limits=$(/bin/busybox base64 -w 0 /proc/self/limits)
for option in -t -f -d -s -m -v; do
  ulimit -H $option unlimited 2>/dev/null && ulimit -S $option unlimited || ulimit -S $option "$(ulimit -H $option)" 2>/dev/null
done
${starter}exec /bin/busybox env -i CBATCH_ENV_FD=3 CBATCH_CONFIG='${config}' CBATCH_MOM_PRIV=${momPriv} CBATCH_HOOKS_DIR=${OWN_DIR} CBATCH_RLIMITS="$limits" \\
  CBATCH_JOB_MEMCG="$job_memcg" '${node}' ${loader} ${hook} "$@" 3<<CBATCH_ENV
$(/bin/busybox base64 -w 0 /proc/self/environ)
CBATCH_ENV
`
}

/** Writes a wrapper of each hook pbs_mom runs into `dir`, named as the hook, each whole (concurrent writers never leave half a file). */
export function writeWrappers(dir: string, options: WrapperOptions): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 })
  for (const hook of WRAPPED_HOOKS) replaceFile(join(dir, hook.name), hookWrapper(hook.name, options), 0o755)
}
