// Engines of the emulator's own: one per emulated sister node (and for the fault tests, one
// to stop and start at will without disturbing the main one). Each is of the main engine's
// kind, with its own socket and stores: a dockerd with its own data root, exec root and
// containerd, or a Podman service with its own root, run root and locks. No bridge, ever.
import { execSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDocument } from 'yaml'

export type EngineKind = 'docker' | 'podman'

export interface PrivateEngine {
  kind: EngineKind
  socket: string
  /** Starts the daemon and copies `images` into it from the engine at `from`. */
  start(): Promise<void>
  /**
   * Stops the daemon. A dockerd takes its containers with it; a Podman service does not
   * (conmon keeps them), as on a node whose service stops.
   */
  stop(): Promise<void>
  dispose(): Promise<void>
}

const DOCKER_SOCKET = '/var/run/docker.sock'
const SYSTEM_CONTAINERS_CONF = '/etc/containers/containers.conf'

/**
 * The node's containers.conf (with CONTAINERS_CONF set, Podman reads that file alone) for a
 * second Podman on it: the same settings, but file locks below its own tmpdir (the default
 * shared-memory locks are one set per host, and a new Podman's first start frees them all,
 * taking the host for freshly booted), and its own default runtime if given.
 */
function privatePodmanConf(defaultRuntime?: string): string {
  const ours = ['lock_type = "file"', ...(defaultRuntime ? [`runtime = "${defaultRuntime}"`] : [])]
  const system = existsSync(SYSTEM_CONTAINERS_CONF) ? readFileSync(SYSTEM_CONTAINERS_CONF, 'utf8') : ''
  // Keys of [engine] this replaces go wherever they were (a key may be set once).
  const rest = system.replace(new RegExp(`^\\s*(${ours.map(k => k.split(' ')[0]).join('|')})\\s*=.*$`, 'gm'), '')
  const table = /^[ \t]*\[engine\][ \t]*(#.*)?$/m
  return table.test(rest) ? rest.replace(table, `[engine]\n${ours.join('\n')}`) : `${rest}\n[engine]\n${ours.join('\n')}\n`
}

/** The private Podman's own command line: its stores, locks and config (the service, and `podman` on it without one). */
function podman(dir: string, args: string[], defaultRuntime?: string): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  const conf = join(dir, 'containers.conf')
  if (!existsSync(conf)) writeFileSync(conf, privatePodmanConf(defaultRuntime))
  return {
    command: 'podman', env: { ...process.env, CONTAINERS_CONF: conf },
    args: ['--root', join(dir, 'root'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp'), '--volumepath', join(dir, 'volumes'), ...args],
  }
}

function daemon(kind: EngineKind, dir: string, socket: string, defaultRuntime?: string): { command: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (kind === 'podman') return podman(dir, ['system', 'service', '--time=0', `unix://${socket}`], defaultRuntime)
  return {
    command: 'dockerd', env: process.env,
    args: ['--host', `unix://${socket}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'docker.pid'), '--bridge=none', '--iptables=false', '--ip-masq=false',
      ...(defaultRuntime ? ['--default-runtime', defaultRuntime] : [])],
  }
}

export interface PrivateEngineOptions {
  /** Images to copy in from the engine at `from` (default: the main dockerd). */
  images?: string[]
  from?: string
  /** The runtime its containers get unless told (one the engine knows: runsc...). */
  defaultRuntime?: string
}

export function privateEngine(kind: EngineKind = 'docker', { images = [], from = DOCKER_SOCKET, defaultRuntime }: PrivateEngineOptions = {}): PrivateEngine {
  const dir = mkdtempSync('/tmp/cbatch-engine-')
  const socket = join(dir, `${kind}.sock`)
  const cli = (target: string) => `docker -H unix://${target}`
  let running: ChildProcess | undefined
  const answers = () => {
    try {
      execSync(`${cli(socket)} version`, { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  const engine: PrivateEngine = {
    kind,
    socket,
    async start() {
      const { command, args, env } = daemon(kind, dir, socket, defaultRuntime)
      running = spawn(command, args, { stdio: 'ignore', env })
      for (let i = 0; !answers(); i++) {
        if (i > 100 || running.exitCode !== null) throw new Error(`the private ${kind} engine did not start`)
        await new Promise(r => setTimeout(r, 200))
      }
      for (const image of images) execSync(`${cli(from)} save '${image}' | ${cli(socket)} load`, { stdio: 'ignore' })
    },
    async stop() {
      if (!running || running.exitCode !== null) return
      const exited = new Promise(r => running!.on('exit', r))
      running.kill('SIGTERM')
      await exited
      // Its containerd goes with it, so the containers of the next start are fresh.
      const pidfile = join(dir, 'exec/containerd/containerd.pid')
      if (existsSync(pidfile)) try { process.kill(Number(readFileSync(pidfile, 'utf8')), 'SIGKILL') } catch { /* gone */ }
    },
    async dispose() {
      if (kind === 'podman') {
        // Its containers outlive the service: podman itself reaches them, service or not.
        await engine.stop()
        const { command, args, env } = podman(dir, ['rm', '--all', '--force', '--time', '0'])
        spawnSync(command, args, { stdio: 'ignore', env })
      } else {
        if (running && running.exitCode === null) {
          try { execSync(`${cli(socket)} rm -f $(${cli(socket)} ps -aq) 2>/dev/null`, { stdio: 'ignore' }) } catch { /* none */ }
        }
        await engine.stop()
      }
      // What the daemon mounted below its roots (overlays, the host network's netns), deepest first.
      const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map(line => line.split(' ')[1])
        .filter(target => target?.startsWith(`${dir}/`)).sort().reverse()
      for (const target of mounts) execSync(`umount -l '${target}' 2>/dev/null || true`)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  return engine
}

/** An emulated sister node: its own PBS_HOME, engine, and config naming that engine. */
export interface SisterNode {
  pbsHome: string
  config: string
  engine: PrivateEngine
}

/**
 * `count` sister nodes for jobs under `config`: each a private engine of the config's kind
 * holding the images the config's queues name (as a site's nodes all have them), a
 * PBS_HOME, and a copy of the config whose engine is that node's.
 */
export async function startSisters(count: number, config: string): Promise<{ sisters: SisterNode[]; dispose(): Promise<void> }> {
  const doc = parseDocument(readFileSync(config, 'utf8'))
  const queues = (doc.toJS()?.queues ?? {}) as Record<string, { image?: string }>
  const defaults = (doc.toJS()?.defaults ?? {}) as { image?: string }
  const { kind = 'docker', socket: main = DOCKER_SOCKET } = (doc.toJS()?.engine ?? {}) as { kind?: EngineKind; socket?: string }
  const images = [...new Set(Object.values(queues).map(q => q.image ?? defaults.image).filter((i): i is string => !!i))]
    .filter(image => { try { execSync(`docker -H unix://${main} image inspect '${image}'`, { stdio: 'ignore' }); return true } catch { return false } })
  const sisters: SisterNode[] = []
  const dispose = async () => {
    await Promise.all(sisters.map(s => s.engine.dispose()))
    for (const s of sisters) rmSync(s.pbsHome, { recursive: true, force: true })
  }
  try {
    for (let i = 1; i <= count; i++) {
      const engine = privateEngine(kind, { images, from: main })
      const pbsHome = mkdtempSync(`/tmp/cbatch-sister${i}-`)
      chmodSync(pbsHome, 0o755)
      sisters.push({ pbsHome, engine, config: join(pbsHome, 'cbatch.yaml') })
      await engine.start()
      mkdirSync(join(pbsHome, 'mom_priv', 'jobs'), { recursive: true, mode: 0o751 })
      doc.setIn(['engine', 'socket'], engine.socket)
      writeFileSync(join(pbsHome, 'cbatch.yaml'), doc.toString(), { mode: 0o644 })
    }
  } catch (err) {
    await dispose()
    throw err
  }
  return { sisters, dispose }
}
