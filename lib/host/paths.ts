// Host paths as strings: which lies within which. No file system access.

/** True when `path` is `dir` or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  const p = path.replace(/\/+$/, '') || '/'
  const d = dir.replace(/\/+$/, '') || '/'
  return p === d || d === '/' || p.startsWith(d + '/')
}
