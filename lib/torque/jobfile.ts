// The job as pbs_mom stored it: `mom_priv/jobs/<prefix>.JB`, root's, XML since TORQUE 6
// (src/server/job_recov.c, saveJobToXML). What root wrote there, not the job's environment,
// says whose job it is and which queue it came from; TORQUE's own pam_pbssimpleauth trusts
// the same file for the same question.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { XMLParser } from 'fast-xml-parser'
import { UsageError } from '../errors.ts'
import { assertRootControlled } from '../host/trusted.ts'

export interface JobRecord {
  jobId: string
  queue: string
  /** The user the job runs as (`euser`) and its uid as pbs_mom will use it. */
  user: string
  uid: number
  /** The job's group (`egroup`) and its gid. */
  group: string
  gid: number
}

/**
 * The prefix of a job's files: its id, with an array sub-job's `N[i].host` as `N-i.host`
 * (contract: "Seen on a real TORQUE 6.1 mom").
 */
export function jobFilePrefix(jobId: string): string {
  return jobId.replace(/^(\d+)\[(\d+)\]/, '$1-$2')
}

/** The `.JB` of a job, if pbs_mom has one (with multi-mom, its name carries the mom's port). */
export function jobFilePath(momPriv: string, jobId: string): string | undefined {
  const dir = join(momPriv, 'jobs')
  const prefix = jobFilePrefix(jobId)
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return undefined
  }
  const exact = `${prefix}.JB`
  if (names.includes(exact)) return join(dir, exact)
  const withPort = names.filter(n => n.startsWith(prefix) && /^\d+\.JB$/.test(n.slice(prefix.length)))
  return withPort.length === 1 ? join(dir, withPort[0]) : undefined
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true, processEntities: true })

/** Reads the job's `.JB`; throws UsageError when there is none or it does not name the job. */
export function readJobRecord(momPriv: string, jobId: string): JobRecord {
  const file = jobFilePath(momPriv, jobId)
  if (!file) throw new UsageError(`job ${jobId} is not known to this pbs_mom (no .JB in ${momPriv}/jobs)`)
  assertRootControlled(file, 'job file')
  return parseJobRecord(readFileSync(file, 'utf8'), jobId, file)
}

export function parseJobRecord(xml: string, jobId: string, file = '<.JB>'): JobRecord {
  let job: Record<string, unknown> | undefined
  try {
    job = (parser.parse(xml) as { job?: Record<string, unknown> }).job
  } catch (err) {
    throw new UsageError(`${file} is not TORQUE 6's XML job file`, (err as Error).message)
  }
  const attributes = (job?.attributes ?? {}) as Record<string, unknown>
  const text = (value: unknown, what: string) => {
    if (typeof value !== 'string' || !value) throw new UsageError(`${file} has no ${what}: is this TORQUE 6 or later?`)
    return value
  }
  const id = (value: unknown, what: string) => {
    const v = text(value, what)
    if (!/^\d+$/.test(v)) throw new UsageError(`${file}: ${what} ${JSON.stringify(v)} is not a number`)
    return Number(v)
  }
  const record = {
    jobId: text(job?.jobid, 'jobid'),
    queue: text(attributes.queue, 'queue'),
    user: text(attributes.euser, 'euser'),
    uid: id(job?.execution_uid, 'execution_uid'),
    group: text(attributes.egroup, 'egroup'),
    gid: id(job?.execution_gid, 'execution_gid'),
  }
  if (record.jobId !== jobId) throw new UsageError(`${file} is the job file of ${record.jobId}, not of ${jobId}`)
  return record
}
