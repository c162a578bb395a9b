// cbatch's security policy, in one place to read top to bottom: what no job may ever get,
// whatever a queue or a job asks for. The rest of the code applies these; docs/security.md
// says which threat each one answers and which test shows it.
import { PolicyError } from '../errors.ts'
import type { Identity } from '../host/identity.ts'
import { overlapping } from '../host/paths.ts'

/** Host paths that may never reach a job, whatever asks for them (and neither may `/`, `/var`, … that hold them). */
export const NEVER_MOUNTED = [
  // Every container runtime's sockets and state, not only the one in use: each is root on the node.
  '/var/run/docker.sock', '/run/docker.sock', '/run/containerd', '/var/lib/docker', '/var/lib/containerd',
  '/run/podman', '/var/run/podman', '/run/containers', '/var/lib/containers', '/run/libpod', '/var/run/libpod', '/run/crio', '/var/lib/crio',
  '/etc/shadow', '/etc/gshadow', '/root', '/proc', '/sys', '/dev', '/boot', '/var/spool/torque',
]

/** Capabilities a queue may never give back: each lets a job escape its container or become root. */
export const REFUSED_CAPABILITIES = ['ALL', 'SYS_ADMIN', 'SYS_MODULE', 'SYS_PTRACE', 'SYS_RAWIO', 'DAC_READ_SEARCH', 'SETUID', 'SETGID']

/**
 * Who runs the container's init and holder: an unprivileged uid that is not the job's, so
 * the job can neither signal nor stop it (and so cannot end its container before the
 * epilogue has read what it used). Job shells and tasks run as the owner, by exec.
 */
export const HOLDER_UID = 65534

/** The largest uid or gid a container runtime takes (32 bits, less the "none" value). */
const MAX_ID = 2 ** 32 - 2

/** What every job container is, whatever its queue says (Docker's default seccomp filter stays on). */
export const CONFINEMENT = {
  Init: true,
  CapDrop: ['ALL'],
  SecurityOpt: ['no-new-privileges'],
  Privileged: false,
  IpcMode: 'private',
  LogConfig: { Type: 'none', Config: {} },
} as const

/**
 * What no mount may be, hold or lie in on this node: NEVER_MOUNTED, this mom's `pbsHome` and
 * the configured engine socket, wherever they are (a Podman service's socket is the admin's choice).
 */
export function neverMounted(pbsHome?: string, engineSocket?: string): string[] {
  return [...NEVER_MOUNTED, ...(pbsHome ? [pbsHome] : []), ...(engineSocket ? [engineSocket] : [])]
}

/** The protected path a mount of `source` would expose, if any. */
export function exposedBy(source: string, pbsHome?: string, engineSocket?: string): string | undefined {
  return overlapping(source, neverMounted(pbsHome, engineSocket))
}

/** Whether a capability may be given back to a queue's jobs. */
export function refusedCapability(cap: string): boolean {
  return REFUSED_CAPABILITIES.includes(cap.replace(/^CAP_/, ''))
}

/** Root runs in a container only where the queue allows it; the holder's uid never does. */
export function checkOwner(owner: Identity, allowRoot: boolean): void {
  if ((owner.uid === 0 || owner.gid === 0) && !allowRoot) {
    throw new PolicyError(`jobs of ${owner.name} (uid ${owner.uid}, gid ${owner.gid}) are not run in containers: root is refused`)
  }
  for (const [what, id] of [['uid', owner.uid], ['gid', owner.gid]] as const) {
    if (!Number.isSafeInteger(id) || id < 0 || id > MAX_ID) {
      throw new PolicyError(`jobs of ${owner.name} (${what} ${id}) are not run in containers: the engine cannot carry that ${what}`)
    }
  }
  if (owner.uid === HOLDER_UID) {
    throw new PolicyError(`jobs of ${owner.name} (uid ${owner.uid}) are not run in containers: that uid runs the container's holder`)
  }
}
