// The resource limits pbs_mom puts on the job starter (linux/mom_mach.c, mom_set_limits):
// `cput`/`pcput` -> CPU, `file` -> FSIZE, `mem` (one-node jobs)/`pmem` -> DATA and RSS
// (and STACK), `vmem`/`pvmem` -> AS. They are the job's: the hook's wrapper records them
// and lifts them for node, and the job gets them back (natively: exactly these; in a
// container: as the engine can set them, see containerRlimits in resources.ts).
import { readFileSync } from 'node:fs'

export type Limit = number | 'unlimited'
export interface Rlimit {
  soft: Limit
  hard: Limit
}

/** The limits mom sets, by the names of /proc/<pid>/limits and of prlimit(1). */
const NAMES = {
  'Max cpu time': 'cpu',
  'Max file size': 'fsize',
  'Max data size': 'data',
  'Max stack size': 'stack',
  'Max resident set': 'rss',
  'Max address space': 'as',
} as const
export type LimitName = typeof NAMES[keyof typeof NAMES]
export type Rlimits = Partial<Record<LimitName, Rlimit>>

/** The limits of /proc/<pid>/limits text. */
export function parseLimits(text: string): Rlimits {
  const limits: Rlimits = {}
  for (const line of text.split('\n')) {
    for (const [label, name] of Object.entries(NAMES)) {
      if (!line.startsWith(label)) continue
      const [soft, hard] = line.slice(label.length).trim().split(/\s+/).map(v => (v === 'unlimited' ? v : Number(v)) as Limit)
      if (soft !== undefined && hard !== undefined && !Number.isNaN(soft) && !Number.isNaN(hard)) limits[name] = { soft, hard }
    }
  }
  return limits
}

/** The job's limits, as the wrapper recorded them before lifting them (CBATCH_RLIMITS, base64). */
export function jobLimits(env: NodeJS.ProcessEnv = process.env): Rlimits {
  return parseLimits(Buffer.from(env.CBATCH_RLIMITS ?? '', 'base64').toString('utf8'))
}

/** This process's own limits now. */
export function ownLimits(): Rlimits {
  return parseLimits(readFileSync('/proc/self/limits', 'utf8'))
}

/**
 * prlimit(1) options that put the job's limits back where they differ from the ones it
 * would inherit now; none when nothing differs.
 */
export function restoringOptions(job: Rlimits, now: Rlimits): string[] {
  return (Object.keys(job) as LimitName[])
    .filter(name => job[name]!.soft !== now[name]?.soft || job[name]!.hard !== now[name]?.hard)
    .map(name => `--${name}=${job[name]!.soft}:${job[name]!.hard}`)
}

/**
 * Address space and data the job starter (Node) needs, in KiB as ulimit counts them, with
 * room above what it was seen to use: a job's vmem or mem below these, which root cannot
 * lift without CAP_SYS_RESOURCE, would stop it.
 */
export const STARTER_NEEDS = { vmem: 2 * 1024 * 1024, mem: 512 * 1024 }
