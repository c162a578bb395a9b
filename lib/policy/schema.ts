// cbatch.yaml's schema: what each key may hold, its default and meaning, and the types of
// the config cbatch obeys (parse.ts turns the text into one).
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { ConfigIssue } from '../errors.ts'
import { SIZE_PATTERN } from '../torque/contract.ts'
import { CONFIG_LIMITS } from './bounds.ts'
import { MAX_MOUNTS } from './jobrequest.ts'
import { RLIMIT_BOUNDS, type LimitsPolicy } from './resources.ts'

const AbsolutePath = (description: string) => Type.String({ pattern: '^/', expects: 'an absolute path', description })

/** A list of at most CONFIG_LIMITS.listItems entries. */
const List = <T extends TSchema>(item: T, options: Parameters<typeof Type.Array>[1]) => Type.Array(item, { maxItems: CONFIG_LIMITS.listItems, ...options })

const Size = (description: string, fallback?: string) => Type.String({
  pattern: SIZE_PATTERN, expects: 'a size such as 512mb or 4gb', description, ...(fallback ? { default: fallback } : {}),
})

const Volume = Type.Object({
  source: AbsolutePath('host path to mount'),
  target: Type.Optional(AbsolutePath('path inside the container (default: same as source)')),
  readOnly: Type.Optional(Type.Boolean({ description: 'mount read-only (default false)' })),
}, { additionalProperties: false })

/**
 * The host's tool and library paths (from `qsub -V`), which would make an image's own tools
 * go unfound or load the node's libraries: by default they stay out of the container.
 */
export const HOST_PATHS = ['PATH', 'LD_*', 'LIBRARY_PATH', 'CPATH', 'C_INCLUDE_PATH', 'CPLUS_INCLUDE_PATH', 'PKG_CONFIG_PATH',
  'PYTHONPATH', 'PYTHONHOME', 'PERL5LIB', 'PERLLIB', 'RUBYLIB', 'CLASSPATH', 'R_LIBS*', 'MANPATH', 'INFOPATH',
  'MODULEPATH', 'MODULESHOME', 'LOADEDMODULES', '_LMFILES_', 'BASH_FUNC_*']

const policyFields = {
  image: Type.String({ minLength: 1, description: 'image reference the queue\'s jobs run in' }),
  pull: Type.Union([Type.Literal('missing'), Type.Literal('always'), Type.Literal('never')], {
    default: 'missing', description: 'when to pull the image: if missing, before every job, or never',
  }),
  network: Type.Union([Type.Literal('none'), Type.Literal('host')], {
    default: 'none', description: 'container network: none, or the host\'s own',
  }),
  runtime: Type.Optional(Type.String({
    pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', expects: 'a runtime name such as runsc',
    description: 'the OCI runtime the queue\'s containers run under, by the name the engine registered it with (Docker: "runtimes" in /etc/docker/daemon.json), e.g. runsc (gVisor) for untrusted jobs; default: the engine\'s default runtime. One the engine does not have fails `cbatch config check`, `cbatch doctor` and the node check, and refuses the queue\'s jobs',
  })),
  holder: List(Type.String({ minLength: 1 }), {
    minItems: 1, default: ['sleep', 'infinity'], description: 'command that keeps the job\'s container up',
  }),
  shellFallback: Type.String({ pattern: '^/', expects: 'an absolute path', default: '/bin/sh', description: 'shell used when the job\'s shell is not in the image' }),
  volumes: List(Volume, { default: [], description: 'site volumes mounted into every job container' }),
  pidsLimit: Type.Integer({ minimum: 16, default: 4096, description: 'most processes a job may have' }),
  nofile: Type.Integer({
    minimum: 64, maximum: RLIMIT_BOUNDS.nofile, default: 65536,
    description: 'RLIMIT_NOFILE of the job\'s processes (soft = hard, so a job cannot raise it): most files each may have open. Never more than the engine can grant on the node: where root may not raise rlimits (no CAP_SYS_RESOURCE), the engine daemon\'s own hard limit; else the kernel\'s fs.nr_open',
  }),
  nproc: Type.Integer({
    minimum: 16, maximum: RLIMIT_BOUNDS.nproc, default: 65536,
    description: 'RLIMIT_NPROC of the job\'s processes (soft = hard): the kernel counts every process and thread of the job\'s owner on the node against it, in and out of containers (pidsLimit bounds the job\'s own). Never more than the engine can grant on the node (as nofile)',
  }),
  maxTasks: Type.Integer({
    minimum: 1, maximum: 4096, default: 64,
    description: 'most job shells and TM tasks (pbsdsh, TM-aware mpiexec) a job may run at once on one node (raised to the job\'s processors on that node and one more, its job shell, where that is more): each holds a root starter of tens of MiB outside the job\'s limits; one more is refused (exit 125, the reason in the job\'s .ER)',
  }),
  limits: Type.Object({
    cpu: Type.Union([Type.Literal('quota'), Type.Literal('cpuset'), Type.Literal('none')], {
      default: 'quota', description: 'CPUs of the job as a CPU-time quota, TORQUE\'s cpuset for the job, or unlimited',
    }),
    defaultCpus: Type.Integer({ minimum: 1, default: 1, description: 'CPUs of a job that asks for none' }),
    maxCpus: Type.Optional(Type.Integer({ minimum: 1, description: 'most CPUs a job may ask for on one node (more: the job is refused)' })),
    defaultMem: Type.Optional(Size('memory of a job that asks for none')),
    maxMem: Type.Optional(Size('most memory a job may ask for (more: the job is refused)')),
  }, { additionalProperties: false, default: {} }),
  allowedImages: List(Type.String({ minLength: 1 }), {
    default: [], description: 'globs of images a job may ask for (#CBATCH image=); `*` stops at /, `**` does not',
  }),
  userMounts: List(Type.Object({
    source: AbsolutePath('host directory below which a job may ask for mounts (#CBATCH mount=)'),
    readOnly: Type.Optional(Type.Boolean({ description: 'force such mounts read-only (default false)' })),
  }, { additionalProperties: false }), { default: [], description: 'host directories below which a job may ask for mounts (#CBATCH mount=)' }),
  maxMounts: Type.Integer({
    minimum: 0, maximum: MAX_MOUNTS, default: 32,
    description: `most #CBATCH mount= a job may ask for (at most ${MAX_MOUNTS}); each is resolved as the owner and bind-mounted by root before the job runs`,
  }),
  capAdd: List(Type.String({ pattern: '^[A-Z][A-Z_]*$', expects: 'a capability name such as NET_BIND_SERVICE' }), {
    default: [], description: 'capabilities given back to jobs (all are dropped), e.g. NET_BIND_SERVICE; SYS_ADMIN, SYS_MODULE, SYS_PTRACE, SETUID... are refused',
  }),
  devices: List(Type.Object({
    path: Type.String({ pattern: '^/dev/', expects: 'a path below /dev/', description: 'host device, e.g. /dev/nvidia0' }),
    permissions: Type.Optional(Type.String({ pattern: '^[rwm]{1,3}$', expects: 'made of r, w and m', description: 'cgroup device permissions (default rwm)' })),
  }, { additionalProperties: false }), { default: [], description: 'devices jobs may use (none by default)' }),
  allowRoot: Type.Boolean({ default: false, description: 'let jobs of uid 0 or gid 0 run in containers' }),
  summaryLine: Type.Boolean({ default: true, description: 'the epilogue ends the job\'s output with a line of what it used (cbatch: cpu 12.3 s, ...), on a line of its own; false: none (the accounting file still has the job\'s record)' }),
  readOnlyRootfs: Type.Boolean({
    default: true, description: 'the image\'s filesystem read-only, with a writable tmpfs /tmp of tmpSize: a job cannot fill the node\'s disk through its container. false lets jobs write anywhere in the image, into the engine\'s data root, without a bound',
  }),
  tmpSize: Size('size of the tmpfs /tmp of a read-only image filesystem (counts against the job\'s memory)', '1gb'),
  scratch: Type.Optional(Type.Object({
    base: AbsolutePath('host directory for per-job scratch directories'),
    target: AbsolutePath('where the job sees its scratch directory (also $CBATCH_SCRATCH)'),
  }, {
    additionalProperties: false,
    description: 'a per-job directory base/<container name> (0700, the owner\'s) mounted at target, removed by the epilogue (with the owner\'s credentials). base and every directory above it must be root\'s and writable by no one else, sticky or not (e.g. /var/lib/cbatch-scratch, never below /tmp), or jobs are refused; made 0711 if missing',
  })),
  cgroupParent: Type.Union([Type.Literal('none'), Type.Literal('torque')], {
    default: 'none', description: 'torque: place the container under the job\'s TORQUE cgroup (cgroupfs driver)',
  }),
  environment: Type.Object({
    pass: List(Type.String({ minLength: 1 }), { default: ['*'], description: 'globs of the job\'s variables that enter its container' }),
    drop: List(Type.String({ minLength: 1 }), {
      default: [...HOST_PATHS], description: 'globs of those that do not. Precedence: the image\'s ENV, then the job\'s variables that enter (an entering variable wins); so by default the image keeps its PATH and libraries, and TORQUE\'s PBS_* and the job\'s own variables (qsub -v, -V) come through. [] lets everything through',
    }),
  }, { additionalProperties: false, default: {} }),
  entrypoint: Type.Boolean({ default: false, description: 'true: the image\'s ENTRYPOINT runs around the holder and around each job shell and task (e.g. one that sets up an environment and exec "$@"); false: no entrypoint of the image runs at all' }),
  registries: List(Type.String({ pattern: '^[A-Za-z0-9.-]+(:[0-9]+)?$', expects: 'a registry host[:port]' }), {
    default: [], description: 'registries the queue\'s images must come from (host[:port], docker.io for Docker Hub); [] for any',
  }),
  pinned: Type.Boolean({ default: false, description: 'images must be named by digest (image@sha256:...), so a tag moved in the registry never changes what runs' }),
  signatures: Type.Object({
    required: Type.Boolean({ default: false, description: 'true: the queue\'s image and every image a job asks for must carry a signature by one of keys, for the digest the node holds and the image\'s own repository (a cosign signature as cosign sign stores it, the sha256-<digest>.sig tag, or a sigstore bundle attached as an OCI referrer, found by the referrers tag schema sha256-<digest>); else the job is refused, the reason in its .ER. The container is made from that digest (repo@sha256:...), so a tag moved after the check never runs; the signer goes into the accounting record' }),
    keys: List(AbsolutePath('a PEM file of public keys (cosign.pub), root\'s and writable by root alone'), {
      default: [], description: 'files of the public keys signatures are verified against, offline (ECDSA P-256, as cosign generate-key-pair makes them; P-384 and P-521 too)',
    }),
  }, { additionalProperties: false, default: {}, description: 'signed images only (docs/admin.md, "Signed images"); verified digests are cached in /var/lib/cbatch/signatures per digest and keys, so a check costs a pull, not a job' }),
  gpus: Type.Optional(Type.Object({
    devices: Type.String({ pattern: '^/', expects: 'an absolute path', default: '/dev', description: 'directory of the node\'s NVIDIA device nodes (nvidia0, nvidiactl...)' }),
    runtime: Type.Union([Type.Literal('auto'), Type.Literal('nvidia'), Type.Literal('none')], {
      default: 'auto', description: 'nvidia: NVIDIA device requests (Podman: the Container Device Interface names nvidia.com/gpu=N); none: the device nodes; auto: requests when the engine has the nvidia runtime',
    }),
  }, { additionalProperties: false, description: 'the queue gives jobs the GPUs pbs_mom allocated them (none without this)' })),
  shmSize: Type.Optional(Size('size of /dev/shm (default: the job\'s memory on the node, else half the node\'s)')),
  memlock: Type.Optional(Type.String({
    pattern: `^(unlimited|${SIZE_PATTERN.replace(/^\^|\$$/g, '')})$`, expects: 'unlimited or a size such as 64mb', description: 'RLIMIT_MEMLOCK of jobs, e.g. unlimited for InfiniBand (RDMA pins memory)',
  })),
}

/** A queue's policy as written, once defaults are applied. */
export const QueuePolicySchema = Type.Object(policyFields, { additionalProperties: false })
export type PolicyText = Static<typeof QueuePolicySchema>

/** A queue's policy as cbatch uses it: sizes in bytes, parsed once here. */
export type QueuePolicy = Omit<PolicyText, 'limits' | 'tmpSize' | 'shmSize' | 'memlock'> & {
  limits: LimitsPolicy
  tmpSize: number
  shmSize?: number
  memlock?: number | 'unlimited'
}

// What `defaults:` and each queue may say. No defaults here: filling them in per queue
// would override the `defaults:` section; they are applied once, after the merge.
const PartialPolicy = withoutDefaults(Type.Object(policyFields, { additionalProperties: false }))

/** The schema, every level of it optional and without defaults. */
function withoutDefaults<T extends TSchema>(schema: T): T {
  const { default: _, required: __, ...rest } = schema as TSchema
  if (rest.properties) {
    rest.properties = Object.fromEntries(Object.entries(rest.properties as Record<string, TSchema>)
      .map(([key, field]) => [key, withoutDefaults(field)]))
  }
  return rest as T
}

export const ConfigSchema = Type.Object({
  engine: Type.Object({
    kind: Type.Union([Type.Literal('docker'), Type.Literal('podman')], {
      default: 'docker', description: 'which engine answers on the socket: docker (dockerd), or podman (`podman system service`, rootful, its Docker-compatible API; docs/admin.md says what differs)',
    }),
    socket: Type.String({ default: '/var/run/docker.sock', description: 'the engine\'s socket: dockerd\'s, or Podman\'s service\'s (e.g. /run/podman/podman.sock)' }),
    timeout: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'seconds any one engine call may take' }),
    pullTimeout: Type.Number({ exclusiveMinimum: 0, default: 180, description: 'seconds an image pull may take' }),
    requeuePause: Type.Number({
      minimum: 0, default: 10, description: 'seconds a prologue that must requeue its job (engine down, pull failed) waits first: pbs_sched sends the job straight back to the same node, so this bounds the loop until the node check takes the node out',
    }),
  }, { additionalProperties: false, default: {} }),
  log: Type.Object({
    file: Type.String({ default: '/var/log/cbatch/cbatch.log', description: 'node log, one JSON object a line; "" for none' }),
    syslog: Type.String({ default: '', description: 'also send each line to syslog through this socket, e.g. /dev/log; "" for not' }),
  }, { additionalProperties: false, default: {} }),
  torque: Type.Object({
    home: AbsolutePath('PBS_HOME of this node\'s pbs_mom (default /var/spool/torque)'),
  }, { additionalProperties: false, default: { home: '/var/spool/torque' } }),
  gc: Type.Object({
    graceSeconds: Type.Integer({ minimum: 0, default: 600, description: 'orphaned containers (and cbatch\'s files in mom_priv) younger than this are left alone' }),
    onPrologue: Type.Boolean({ default: true, description: 'every prologue also removes orphans' }),
  }, { additionalProperties: false, default: {} }),
  images: Type.Object({
    auth: Type.Optional(AbsolutePath('private registries\' credentials, in Docker\'s config.json format ({"auths": {"reg.site.org": {"auth": "<base64 user:password>"}}}), root\'s, mode 0600 (else jobs that need a pull are refused); sent with each pull to that registry only, never logged, never in a job\'s container')),
    pullAttempts: Type.Integer({ minimum: 1, maximum: 10, default: 3, description: 'tries of a pull whose registry is down or failing, with pauses of 1, 2, 4... s; a registry that refuses the image (no such image, wrong credentials) is not tried again: the job is refused with that reason' }),
    budget: Type.Optional(Size('most the node\'s images may take together, for `cbatch images prune`')),
    pullDeadline: Type.Number({
      exclusiveMinimum: 0, default: 3600, description: 'seconds a pull may go on. The first prologue that needs an image starts its pull detached (one per image on a node, however many jobs wait for it); every prologue waits for it up to engine.pullTimeout, then requeues its job, and the pull goes on for the job\'s next start',
    }),
  }, { additionalProperties: false, default: {} }),
  metrics: Type.Object({
    textfile: Type.Optional(AbsolutePath('a Prometheus textfile for node_exporter\'s textfile collector (e.g. /var/lib/node_exporter/textfile/cbatch.prom), '
      + 'rewritten whole by every hook, every series there from the first write (0 until its first event): cbatch_jobs_started_total and cbatch_jobs_ended_total {queue, node=mother|sister}, '
      + 'cbatch_jobs_running {queue} (gauge: this pbs_mom\'s job containers running now), cbatch_prologue_outcomes_total {hook, outcome=ok|abort|requeue}, '
      + 'cbatch_hook_duration_seconds {hook} (summary; the job starter\'s until the job shell or task starts, not the job\'s run), cbatch_image_pulls_total {outcome=ok|failed|refused}, cbatch_image_pull_duration_seconds (summary), cbatch_oom_kills_total {queue}, '
      + 'cbatch_orphans_collected_total; the counts behind it are kept in /var/lib/cbatch (root\'s alone, 0700). The textfile is 0644 and its directory made 0755 if missing: node_exporter reads it')),
  }, { additionalProperties: false, default: {} }),
  accounting: Type.Object({
    file: Type.String({ default: '/var/log/cbatch/accounting.jsonl', description: 'one JSON line per job; "" for none' }),
  }, { additionalProperties: false, default: {} }),
  defaults: { ...PartialPolicy, default: {} } as typeof PartialPolicy,
  queues: Type.Record(Type.String({ pattern: '^[A-Za-z0-9_.-]+$' }), PartialPolicy, {
    default: {}, additionalProperties: false, description: 'policy per TORQUE queue; jobs of other queues run natively',
  }),
}, { additionalProperties: false })

export type RawConfig = Static<typeof ConfigSchema>

export interface Config {
  file: string
  engine: RawConfig['engine']
  log: RawConfig['log']
  accounting: RawConfig['accounting']
  torque: RawConfig['torque']
  gc: RawConfig['gc']
  images: Omit<RawConfig['images'], 'budget'> & { budget?: number }
  metrics: RawConfig['metrics']
  queues: Map<string, QueuePolicy>
  /** What the rules warn of: obeyed, said by `config check` and `doctor`. */
  warnings: ConfigIssue[]
}

/** The JSON Schema of cbatch.yaml, for editors and other tools (config/cbatch.schema.json). */
export function configJsonSchema(): object {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'cbatch.yaml',
    ...JSON.parse(JSON.stringify(ConfigSchema)),
  }
}
