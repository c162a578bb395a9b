// How sizes and durations read for people: in messages, the summary line, the node log.

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`
}

/** `HH:MM:SS`, as TORQUE writes times (hours may pass 24). */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds)
  const pad = (n: number) => String(n).padStart(2, '0')
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`
}

/** Rows as aligned columns, two spaces apart, a line each (the first row is the header). */
export function formatTable(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map(r => r[c].length)))
  return rows.map(row => `${row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()}\n`).join('')
}
