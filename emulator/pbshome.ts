// The emulated node's PBS_HOME as pbs_mom keeps it: its directories, the job's files in them
// (script, job file), and the hooks installed for it.
import { createHash } from 'node:crypto'
import { chmodSync, closeSync, constants as fsConstants, fchmodSync, fchownSync, mkdirSync, openSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { XMLBuilder } from 'fast-xml-parser'
import { writeWrappers } from '../hooks/wrapper.ts'
import { UnsafePathError } from '../lib/errors.ts'
import type { Identity } from '../lib/host/identity.ts'
import { assertRootControlled, replaceFile } from '../lib/host/trusted.ts'
import { DEFAULT_CONFIG_PATH } from '../lib/policy/config.ts'
import { parseResourceList } from '../lib/torque/contract.ts'
import { jobFilePrefix } from '../lib/torque/jobfile.ts'

/** Like TORQUE's /var/spool/torque: outside any directory a job may be submitted from. */
export const DEFAULT_PBS_HOME = '/var/spool/cbatch-pbs_home'

/**
 * The emulated PBS_HOME's directories, each root's alone with exactly its mode (as pbs_mom
 * keeps them: job owners may pass through, their scripts are in jobs/; one left open to
 * others, as TORQUE's sticky spool is, is closed): root makes and opens job files
 * there (the owner's .OU/.ER among them), so no one else may plant a name or link in them
 * first. The PBS_HOME itself must be where only root can change what its path names.
 */
export function momDirs(pbsHome: string): void {
  assertRootControlled(pbsHome, 'emulated PBS_HOME', { mayBeMissing: true })
  for (const [dir, mode] of [['', 0o755], ['mom_priv', 0o751], ['mom_priv/jobs', 0o751], ['spool', 0o755], ['aux', 0o755]] as const) {
    const path = join(pbsHome, dir)
    mkdirSync(path, { recursive: true, mode })
    const stat = statSync(path)
    if (!stat.isDirectory() || stat.uid !== 0) throw new UnsafePathError(`emulated PBS_HOME ${pbsHome} is not safe: ${path} is not root's own directory`)
    chmodSync(path, mode)
  }
}

/**
 * A new file of the job in a PBS_HOME directory (root's alone): never through a name already
 * there (one a crashed run left is removed first), given to `owner` on the open file itself.
 */
export function createFile(file: string, content: string | Uint8Array, mode: number, owner: Pick<Identity, 'uid' | 'gid'>): void {
  rmSync(file, { force: true })
  const fd = openSync(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, mode)
  try {
    writeFileSync(fd, content)
    fchmodSync(fd, mode)
    fchownSync(fd, owner.uid, owner.gid)
  } finally {
    closeSync(fd)
  }
}

export interface EmulatedJobFile {
  jobId: string
  queue: string
  owner: Pick<Identity, 'name' | 'uid' | 'gid'>
  group: string
  resources: string
  variables: Record<string, string>
  cookie: string
  execHost?: string
}

/** Where pbs_mom keeps the job's `.JB` in `pbsHome`. */
export function jobFileOf(pbsHome: string, jobId: string): string {
  return join(pbsHome, 'mom_priv', 'jobs', `${jobFilePrefix(jobId)}.JB`)
}

/** The job as TORQUE 6's pbs_mom stores it: `mom_priv/jobs/<jobid>.JB`, XML, root's (src/server/job_recov.c, saveJobToXML). */
export function writeJobFile(pbsHome: string, job: EmulatedJobFile): string {
  const file = jobFileOf(pbsHome, job.jobId)
  replaceFile(file, jobFileXml(job), 0o600) // it holds the job's secret cookie: root's alone
  return file
}

function jobFileXml(job: EmulatedJobFile): string {
  const flags = { '@_flags': '1' }
  const attribute = (value: string) => ({ ...flags, '#text': value })
  return new XMLBuilder({ format: true, ignoreAttributes: false, suppressEmptyNode: false }).build({
    '?xml': { '@_version': '1.0' },
    job: {
      version: 131842, state: 4, substate: 42, server_flags: 33, start_time: Math.floor(Date.now() / 1000),
      jobid: job.jobId, fileprefix: jobFilePrefix(job.jobId), queue: '', destination_queue: '', record_type: 3, svr_addr: 0, exit_status: 0,
      execution_uid: job.owner.uid, execution_gid: job.owner.gid,
      attributes: {
        Job_Owner: attribute(`${job.owner.name}@${hostname()}`),
        job_state: attribute('R'),
        queue: attribute(job.queue),
        Resource_List: Object.fromEntries([...parseResourceList(job.resources)].map(([k, v]) => [k, attribute(v)])),
        Variable_List: attribute(Object.entries(job.variables).map(([k, v]) => `${k}=${v}`).join('\n')),
        euser: attribute(job.owner.name),
        cookie: attribute(job.cookie),
        ...(job.execHost ? { exec_host: attribute(job.execHost) } : {}),
        egroup: attribute(job.group),
      },
    },
  })
}

/**
 * The hooks as install.sh would install them for this PBS_HOME and `config`: wrappers
 * naming both, kept in PBS_HOME per config and sharing the built bundles of `hooksDir`.
 */
export function hooksFor(hooksDir: string, config = DEFAULT_CONFIG_PATH, pbsHome = DEFAULT_PBS_HOME): string {
  const elsewhere = { momPriv: join(pbsHome, 'mom_priv'), bundles: join(resolve(hooksDir), 'cbatch.d') }
  const options = { node: process.execPath, config, elsewhere }
  const dir = join(pbsHome, 'cbatch-hooks', createHash('sha256').update(JSON.stringify(options)).digest('hex').slice(0, 16))
  writeWrappers(dir, options) // each time: whole files, so jobs running meanwhile never see half of one
  return dir
}
