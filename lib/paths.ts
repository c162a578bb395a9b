// Host paths: which ones may reach a job, and how paths nest.

/** Host paths that may never reach a job, whatever asks for them. */
export const NEVER_MOUNTED = [
  '/var/run/docker.sock', '/run/docker.sock', '/run/containerd', '/var/lib/docker', '/var/lib/containerd',
  '/etc/shadow', '/etc/gshadow', '/root', '/proc', '/sys', '/dev', '/boot', '/var/spool/torque',
]

/** True when `path` is `dir` or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  const p = path.replace(/\/+$/, '') || '/'
  const d = dir.replace(/\/+$/, '') || '/'
  return p === d || d === '/' || p.startsWith(d + '/')
}

/** The protected path a mount of `source` would expose, if any (`/` and `/var` expose many). */
export function exposedBy(source: string): string | undefined {
  return NEVER_MOUNTED.find(p => isWithin(source, p) || isWithin(p, source))
}
