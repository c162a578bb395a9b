// How sizes, durations and text from jobs read for people: in messages, the summary line,
// the node log, and whatever is printed to an operator's terminal.

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

/** Rows as aligned columns, two spaces apart, a line each (the first row is the header); cells made printable. */
export function formatTable(cells: string[][]): string {
  const rows = cells.map(row => row.map(printable))
  const widths = rows[0].map((_, c) => Math.max(...rows.map(r => r[c].length)))
  return rows.map(row => `${row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd()}\n`).join('')
}

/**
 * What a terminal must not interpret, in text that may come from a job (node log, labels,
 * image names, paths): C0 controls and DEL, C1 controls (U+0080–U+009F, which some
 * terminals take as ESC sequences), bidi overrides and isolates, line and paragraph separators.
 */
const BEYOND_C0 = '\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069'
const UNPRINTABLE = new RegExp(`[\u0000-\u001f${BEYOND_C0}]`, 'g')
/** JSON.stringify escapes C0 in strings itself; outside them it writes only its own whitespace. */
const UNPRINTABLE_IN_JSON = new RegExp(`[${BEYOND_C0}]`, 'g')
const hex = (c: string, width: number) => c.charCodeAt(0).toString(16).padStart(width, '0')

/** `text` safe to print to a terminal: each such character as a visible escape (\n, \x1b, \u202e). */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, c => ({ '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c] ?? (c < '\u0100' ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`))
}

/** JSON of `value` safe to print to a terminal: still valid JSON (JSON.stringify leaves C1 and bidi as they are). */
export function printableJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNPRINTABLE_IN_JSON, c => `\\u${hex(c, 4)}`)
}
