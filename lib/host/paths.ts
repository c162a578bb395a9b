// Host paths as strings: which lies within which. No file system access.

/** True when `path` is `dir` or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  const p = path.replace(/\/+$/, '') || '/'
  const d = dir.replace(/\/+$/, '') || '/'
  return p === d || d === '/' || p.startsWith(d + '/')
}

/** The first of `paths` that `path` is, lies in, or holds. */
export function overlapping(path: string, paths: string[]): string | undefined {
  return paths.find(p => isWithin(path, p) || isWithin(p, path))
}
