// TORQUE's task manager (TM), as the emulator offers it to a job: `pbsdsh` inside the job's
// container asks "its pbs_mom" on 127.0.0.1:PBS_MOMPORT to start a task on the job's nodes,
// and that mom starts it through the node's job starter, as pbs_mom does for a TM spawn
// (docs/torque-contract.md, "Multi-node jobs and TM tasks"). As on a real cluster the task
// launcher needs TCP to the mom: from a container that is the host network.
// The wire is not TM's: a small HTTP request that busybox wget can make.
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { join } from 'node:path'
import { makeRootDir, replaceFile } from '../lib/host/trusted.ts'

/** Where the emulator keeps its pbsdsh: a site volume of a queue can offer it to jobs. */
export const EMULATOR_TOOLS = '/var/lib/cbatch-emulator/bin'

export interface Spawner {
  /** The job's cookie: only the job's own tasks may start more of its tasks. */
  cookie: string
  /** Starts `argv` on the job's vnode; resolves to the task's exit status. */
  spawn(vnode: number, argv: string[]): Promise<number>
  /** The job's vnodes, and how many a node has. */
  vnodes: number
  ppn: number
}

export interface TaskManager {
  port: number
  close(): Promise<void>
}

export async function startTaskManager(spawner: Spawner): Promise<TaskManager> {
  const server: Server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', chunk => (body += chunk))
    req.on('end', () => {
      const reply = (text: string) => res.end(text.endsWith('\n') ? text : `${text}\n`)
      const request = parseSpawn(body, spawner)
      if (typeof request === 'string') {
        reply(`pbsdsh: ${request}`)
        return
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' })
      // Blank lines while tasks run: wget's read timeout never ends a long task's pbsdsh.
      const alive = setInterval(() => res.write('\n'), 30_000)
      Promise.all(request.vnodes.map(v => spawner.spawn(v, request.argv)))
        .then(statuses => reply(statuses.map(s => `exit ${s}`).join('\n')), err => reply(`pbsdsh: ${(err as Error).message}`))
        .finally(() => clearInterval(alive))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () => new Promise(resolve => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
  }
}

/** `cookie \n placement vnode \n base64(arg) \n ...` (and a last newline) -> the vnodes and argv, or what is wrong. */
function parseSpawn(body: string, spawner: Spawner): { vnodes: number[]; argv: string[] } | string {
  const [cookie, placement, ...args] = body.replace(/\n$/, '').split('\n')
  if (!sameSecret(cookie, spawner.cookie)) return 'not a task of this job (PBS_JOBCOOKIE)'
  const argv = args.map(a => Buffer.from(a, 'base64').toString('utf8'))
  if (!argv.length || !argv[0]) return 'no command'
  const [kind, index] = placement?.split(' ') ?? []
  const all = Array.from({ length: spawner.vnodes }, (_, v) => v)
  if (kind === 'all') return { vnodes: all, argv }
  if (kind === 'unique') return { vnodes: all.filter(v => v % spawner.ppn === 0), argv }
  const vnode = Number(index)
  if (kind !== 'vnode' || !Number.isInteger(vnode) || vnode < 0 || vnode >= spawner.vnodes) {
    return `no vnode ${index} in this job (0-${spawner.vnodes - 1})`
  }
  return { vnodes: [vnode], argv }
}

/** Compared in constant time: how long a wrong guess takes says nothing of the cookie. */
function sameSecret(given: string, secret: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest()
  return timingSafeEqual(digest(given), digest(secret))
}

/** The emulator's pbsdsh, in busybox sh: `pbsdsh [-u | -n VNODE] COMMAND [ARGS...]`. */
const PBSDSH = `#!/bin/sh
# pbsdsh of the cbatch emulator: asks this job's emulated pbs_mom (127.0.0.1:$PBS_MOMPORT)
# to start a task on the job's nodes, as TORQUE's pbsdsh does through TM. Like TORQUE's, it
# exits 0 whatever its tasks do; their output goes to the job's output. The request holds
# the job's cookie: it goes to wget on its stdin (a here-document, shell only), never in an
# argument, which every user of the node can read in /proc/PID/cmdline.
set -o pipefail
placement="all 0"
while [ $# -gt 0 ]; do
  case $1 in
    -n) placement="vnode $2"; shift 2 ;;
    -u) placement="unique 0"; shift ;;
    -s|-v) shift ;;
    --) shift; break ;;
    -*) echo "pbsdsh: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: pbsdsh [-u | -n vnode] command [args...]" >&2; exit 1; }
request="$PBS_JOBCOOKIE
$placement"
for arg; do
  request="$request
$(printf '%s' "$arg" | base64 | tr -d '\\n')"
done
wget -q -O - --post-file /dev/stdin "http://127.0.0.1:$PBS_MOMPORT/spawn" 2>/dev/null <<REQUEST | while read -r line; do
$request
REQUEST
  case $line in pbsdsh:*) echo "$line" >&2 ;; esac
done || { echo "pbsdsh: cannot reach pbs_mom at 127.0.0.1:$PBS_MOMPORT (tm_init failed: does the queue use the host network?)" >&2; exit 1; }
`

/** Writes the emulator's pbsdsh into EMULATOR_TOOLS (root's, readable by all), whole. */
export function installPbsdsh(dir = EMULATOR_TOOLS): string {
  makeRootDir(dir, 'emulator tools directory', 0o755)
  const file = join(dir, 'pbsdsh')
  replaceFile(file, PBSDSH, 0o755)
  return file
}
