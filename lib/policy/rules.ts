// Cross-field rules of cbatch.yaml: what the schema cannot say of one value alone. Each
// rule has a name (shown with what it finds, listed in docs/config.md) and a severity:
// an error refuses the file, a warning is said by `config check` and `doctor` and obeyed.
// Rules see the config after the schema passed it and its sizes became bytes (parse.ts).
import { exposedBy, refusedCapability } from './security.ts'
import { checkImageSource } from './image.ts'
import { ImageReference } from './reference.ts'
import { MIN_MEMORY } from './resources.ts'
import { formatBytes } from '../format.ts'
import type { Config, QueuePolicy } from './schema.ts'

export type Severity = 'error' | 'warning'

/** What a rule found, at a dot-path below what it judges (a queue, or the whole file). */
export interface Finding {
  path: (string | number)[]
  message: string
}

export interface Rule<T> {
  name: string
  severity: Severity
  /** One line for docs/config.md. */
  description: string
  check: (subject: T) => Finding[]
}

/** Container paths cbatch mounts itself: a volume or scratch there would hide them. */
const CBATCH_TARGETS = ['/', '/etc/passwd', '/etc/group', '/.cbatch']

export const QUEUE_RULES: Rule<QueuePolicy>[] = [
  {
    name: 'image-reference',
    severity: 'error',
    description: 'the queue\'s image is an image reference ([registry/]path[:tag][@digest], lower case)',
    check: q => (ImageReference.isValid(q.image) ? [] : [{ path: ['image'], message: `${JSON.stringify(q.image)} is not an image reference ([registry/]path[:tag][@digest], lower case)` }]),
  },
  {
    name: 'image-source',
    severity: 'error',
    description: 'the queue\'s image comes from one of its registries, and is named by digest if the queue is pinned',
    check: q => {
      if (!ImageReference.isValid(q.image)) return [] // image-reference says why
      try {
        checkImageSource(q, q.image)
        return []
      } catch (err) {
        return [{ path: ['image'], message: (err as Error).message }]
      }
    },
  },
  {
    name: 'signatures-need-keys',
    severity: 'error',
    description: 'signatures.required names at least one key file in signatures.keys: else no image could ever be verified',
    check: q => (q.signatures.required && !q.signatures.keys.length
      ? [{ path: ['signatures', 'keys'], message: 'signatures.required without keys: no image could be verified, so every job would be refused; name the key files (e.g. /etc/cbatch/cosign.pub)' }] : []),
  },
  {
    name: 'volume-exposes-node',
    severity: 'error',
    description: 'no volume, user mount base or scratch base exposes the node (/, /var, the Docker socket, /etc/shadow, /root, /proc, ...)',
    check: q => [
      ...q.volumes.flatMap((v, i) => exposure(v.source, ['volumes', i, 'source'], 'may not be mounted into jobs')),
      ...q.userMounts.flatMap((m, i) => exposure(m.source, ['userMounts', i, 'source'], 'may not be offered to jobs')),
      ...(q.scratch ? exposure(q.scratch.base, ['scratch', 'base'], 'may not hold scratch directories') : []),
    ],
  },
  {
    name: 'mount-target-once',
    severity: 'error',
    description: 'each container path holds one mount (volumes, scratch), and none hides what cbatch mounts itself (/, /etc/passwd, /etc/group, /.cbatch)',
    check: q => {
      const found: Finding[] = []
      const targets = new Set<string>()
      const place = (target: string, path: Finding['path']) => {
        const clean = target.replace(/\/+$/, '') || '/'
        if (CBATCH_TARGETS.some(t => clean === t || (t !== '/' && clean.startsWith(`${t}/`)))) found.push({ path, message: `${target} is where cbatch mounts its own files` })
        else if (targets.has(clean)) found.push({ path, message: `${target} is mounted twice` })
        targets.add(clean)
      }
      q.volumes.forEach((v, i) => place(v.target ?? v.source, ['volumes', i, v.target === undefined ? 'source' : 'target']))
      if (q.scratch) place(q.scratch.target, ['scratch', 'target'])
      return found
    },
  },
  {
    name: 'capability-never-given',
    severity: 'error',
    description: 'capAdd gives back no capability that lets a job escape its container or become root (SYS_ADMIN, SYS_MODULE, SETUID, ...)',
    check: q => q.capAdd.flatMap((cap, i) => (refusedCapability(cap)
      ? [{ path: ['capAdd', i], message: `${cap} would let a job escape its container or become root; it is never given back` }] : [])),
  },
  {
    name: 'default-cpus-within-max',
    severity: 'error',
    description: 'limits.defaultCpus is at most limits.maxCpus: else every job that asks for nothing is refused',
    check: ({ limits: l }) => (l.maxCpus !== undefined && l.defaultCpus > l.maxCpus
      ? [{ path: ['limits', 'defaultCpus'], message: `${l.defaultCpus} CPUs is more than limits.maxCpus (${l.maxCpus}): every job that asks for no CPUs would be refused` }] : []),
  },
  {
    name: 'default-mem-within-max',
    severity: 'error',
    description: 'limits.defaultMem is at most limits.maxMem: else every job that asks for nothing is refused',
    check: ({ limits: l }) => (l.defaultMem !== undefined && l.maxMem !== undefined && l.defaultMem > l.maxMem
      ? [{ path: ['limits', 'defaultMem'], message: `${formatBytes(l.defaultMem)} is more than limits.maxMem (${formatBytes(l.maxMem)}): every job that asks for no memory would be refused` }] : []),
  },
  {
    name: 'memory-above-engine-minimum',
    severity: 'error',
    description: `limits.defaultMem and limits.maxMem are at least the engine's smallest memory limit (${formatBytes(MIN_MEMORY)})`,
    check: ({ limits: l }) => (['defaultMem', 'maxMem'] as const).flatMap(key => (l[key] !== undefined && l[key] < MIN_MEMORY
      ? [{ path: ['limits', key], message: `${formatBytes(l[key])} is under the engine's smallest memory limit (${formatBytes(MIN_MEMORY)}): no job could run` }] : [])),
  },
  {
    name: 'tmpfs-within-memory',
    severity: 'warning',
    description: 'tmpSize and shmSize are at most limits.maxMem: their pages count against the job\'s memory, so the rest cannot be used',
    check: q => {
      const max = q.limits.maxMem
      if (max === undefined) return []
      const sizes = [...(q.readOnlyRootfs ? [['tmpSize', q.tmpSize] as const] : []), ...(q.shmSize !== undefined ? [['shmSize', q.shmSize] as const] : [])]
      return sizes.filter(([, size]) => size > max).map(([key, size]) => ({
        path: [key], message: `${formatBytes(size)} is more than limits.maxMem (${formatBytes(max)}): a job runs out of memory before it fills it`,
      }))
    },
  },
  {
    name: 'tasks-within-pids',
    severity: 'warning',
    description: 'maxTasks is at most pidsLimit: each task is at least one process of the job',
    check: q => (q.maxTasks > q.pidsLimit
      ? [{ path: ['maxTasks'], message: `${q.maxTasks} tasks is more than pidsLimit (${q.pidsLimit}) processes: the pids limit is met first` }] : []),
  },
  {
    name: 'tasks-within-nproc',
    severity: 'error',
    description: 'nproc is at least maxTasks: each job shell and task is a process of the owner, and the kernel refuses the owner a process past nproc',
    check: q => (q.nproc < q.maxTasks
      ? [{ path: ['nproc'], message: `${q.nproc} processes is fewer than maxTasks (${q.maxTasks}): the owner's tasks would fail to start` }] : []),
  },
]

function exposure(source: string, path: Finding['path'], refusal: string): Finding[] {
  const forbidden = exposedBy(source)
  return forbidden ? [{ path, message: `${source} ${refusal} (it exposes ${forbidden})` }] : []
}

/** pbs_mom kills the prologue 10 s before $prologalarm (300 s by default). */
export const PROLOGUE_BUDGET_SECONDS = 290

/** The file as a whole: `queuesWritten` says whether it has a `queues:` key at all. */
export type FileSubject = Pick<Config, 'engine' | 'images'> & { queuesWritten: boolean; queueCount: number }

export const FILE_RULES: Rule<FileSubject>[] = [
  {
    name: 'queues-written',
    severity: 'error',
    description: 'the file has a queues key: an empty, truncated or comments-only file would turn containers off for the whole node; `queues: {}` says so on purpose',
    check: f => (f.queuesWritten ? [] : [{
      path: ['queues'], message: 'no queues key: every job would run natively, outside containers; name the queues, or write `queues: {}` if that is what you mean',
    }]),
  },
  {
    name: 'queues-none',
    severity: 'warning',
    description: '`queues: {}`: every job of the node runs natively',
    check: f => (f.queuesWritten && f.queueCount === 0 ? [{ path: ['queues'], message: 'no queue: every job runs natively, outside containers' }] : []),
  },
  {
    name: 'prologue-within-alarm',
    severity: 'error',
    description: `engine.pullTimeout + 3 x engine.timeout + engine.requeuePause stays under ${PROLOGUE_BUDGET_SECONDS} s, so the prologue ends before pbs_mom's $prologalarm`,
    check: ({ engine: e }) => {
      const seconds = e.pullTimeout + 3 * e.timeout + e.requeuePause
      return seconds > PROLOGUE_BUDGET_SECONDS ? [{
        path: ['engine'], message: `pullTimeout + 3 x timeout + requeuePause is ${seconds} s; it must stay under ${PROLOGUE_BUDGET_SECONDS} s so the prologue ends before pbs_mom's $prologalarm`,
      }] : []
    },
  },
  {
    name: 'pull-outlasts-wait',
    severity: 'warning',
    description: 'images.pullDeadline is at least engine.pullTimeout: a pull that ends before prologues stop waiting for it never outlives them',
    check: f => (f.images.pullDeadline < f.engine.pullTimeout ? [{
      path: ['images', 'pullDeadline'], message: `${f.images.pullDeadline} s is less than engine.pullTimeout (${f.engine.pullTimeout} s): a big image's pull ends before the prologue waiting for it gives up`,
    }] : []),
  },
]

/** Every rule's findings, by severity; `rule` names the rule in each. */
export function applyRules<T>(rules: Rule<T>[], subject: T): Record<Severity, (Finding & { rule: string })[]> {
  const out: Record<Severity, (Finding & { rule: string })[]> = { error: [], warning: [] }
  for (const rule of rules) out[rule.severity].push(...rule.check(subject).map(f => ({ ...f, rule: rule.name })))
  return out
}
