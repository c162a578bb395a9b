// What both benchmarks (bench/run.ts, bench/torque.ts) measure with: medians, the machine's
// busy CPU, tables, and the engine's floor (the calls any container-per-job design pays).
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { request } from 'node:http'

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
export const ms = (x: number) => `${x.toFixed(0)} ms`
export const ratio = (a: number, b: number) => (a / b).toFixed(2)

export function table(title: string, rows: string[][]): void {
  console.log(`\n${title}`)
  const widths = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)))
  for (const r of rows) console.log(`  ${r.map((c, i) => c.padEnd(widths[i])).join('  ')}`)
}

/** CPU time the machine spent busy (every process, every core; USER_HZ 100), ms. */
export function busyCpuMs(): number {
  const [, user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).map(Number)
  return (user + nice + system + irq + softirq) * 10
}

/**
 * Waits (at most a minute) until the engine has no ended cbatch container carrying `label`
 * left: the epilogue leaves their removal to a detached remover, which waits until pbs_mom
 * (or `cbatch run`) is done with the job, so that no measurement pays for an earlier job's.
 */
export async function removersDone(label = 'cbatch.job'): Promise<void> {
  const leftovers = () => execFileSync('docker', ['ps', '-aq', '--filter', `label=${label}`, '--filter', 'status=exited',
    '--filter', 'status=dead', '--filter', 'status=removing'], { encoding: 'utf8' }).trim()
  for (const until = Date.now() + 60_000; leftovers() && Date.now() < until;) await new Promise(r => setTimeout(r, 100))
}

/** One Engine API call on the socket, no client library around it. */
function api(socket: string, method: string, path: string, body?: object): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, headers: { 'Content-Type': 'application/json' } }, res => {
      let data = ''
      res.on('data', d => (data += d))
      res.on('end', () => resolve({ status: res.statusCode!, body: data }))
    })
    req.on('error', reject)
    req.end(body ? JSON.stringify(body) : undefined)
  })
}

/**
 * The floor: create + start + exec + delete, what any container-per-job design must pay,
 * with the network isolation cbatch gives (no network namespace set up by the engine:
 * that alone costs a start more than 100 ms here, and `docker run --network none` pays it).
 */
export async function apiFloor(socket: string, image: string): Promise<void> {
  const created = JSON.parse((await api(socket, 'POST', '/containers/create', {
    Image: image, Cmd: ['sleep', 'infinity'], NetworkDisabled: true, HostConfig: { Init: true, NetworkMode: 'none' },
  })).body)
  await api(socket, 'POST', `/containers/${created.Id}/start`)
  const exec = JSON.parse((await api(socket, 'POST', `/containers/${created.Id}/exec`, { Cmd: ['true'], AttachStdout: true })).body)
  await api(socket, 'POST', `/exec/${exec.Id}/start`, { Detach: false, Tty: false })
  await api(socket, 'DELETE', `/containers/${created.Id}?force=true`)
}
