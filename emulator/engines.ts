// Docker engines of the emulator's own: one per emulated sister node (and for the fault
// tests, one to stop and start at will without disturbing the main one). Each has its own
// socket, data root, exec root and containerd. No bridge, ever.
import { execSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseDocument } from 'yaml'

export interface PrivateEngine {
  socket: string
  /** Starts the daemon and copies `images` into it from the main engine. */
  start(): Promise<void>
  stop(): Promise<void>
  dispose(): Promise<void>
}

export function privateEngine(images: string[] = []): PrivateEngine {
  const dir = mkdtempSync('/tmp/cbatch-engine-')
  const socket = join(dir, 'docker.sock')
  let daemon: ChildProcess | undefined
  const answers = () => {
    try {
      execSync(`docker -H unix://${socket} version`, { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  const engine: PrivateEngine = {
    socket,
    async start() {
      daemon = spawn('dockerd', ['--host', `unix://${socket}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'),
        '--pidfile', join(dir, 'docker.pid'), '--bridge=none', '--iptables=false', '--ip-masq=false'], { stdio: 'ignore' })
      for (let i = 0; !answers(); i++) {
        if (i > 100) throw new Error('the private dockerd did not start')
        await new Promise(r => setTimeout(r, 200))
      }
      for (const image of images) execSync(`docker save '${image}' | docker -H unix://${socket} load`, { stdio: 'ignore' })
    },
    async stop() {
      if (!daemon || daemon.exitCode !== null) return
      const exited = new Promise(r => daemon!.on('exit', r))
      daemon.kill('SIGTERM')
      await exited
      // Its containerd goes with it, so the containers of the next start are fresh.
      const pidfile = join(dir, 'exec/containerd/containerd.pid')
      if (existsSync(pidfile)) try { process.kill(Number(readFileSync(pidfile, 'utf8')), 'SIGKILL') } catch { /* gone */ }
    },
    async dispose() {
      if (daemon && daemon.exitCode === null) {
        try { execSync(`docker -H unix://${socket} rm -f $(docker -H unix://${socket} ps -aq) 2>/dev/null`, { stdio: 'ignore' }) } catch { /* none */ }
      }
      await engine.stop()
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
 * `count` sister nodes for jobs under `config`: each a private engine holding the images
 * the config's queues name (as a site's nodes all have them), a PBS_HOME, and a copy of
 * the config whose engine is that node's.
 */
export async function startSisters(count: number, config: string): Promise<{ sisters: SisterNode[]; dispose(): Promise<void> }> {
  const doc = parseDocument(readFileSync(config, 'utf8'))
  const queues = (doc.toJS()?.queues ?? {}) as Record<string, { image?: string }>
  const defaults = (doc.toJS()?.defaults ?? {}) as { image?: string }
  const images = [...new Set(Object.values(queues).map(q => q.image ?? defaults.image).filter((i): i is string => !!i))]
    .filter(image => { try { execSync(`docker image inspect '${image}'`, { stdio: 'ignore' }); return true } catch { return false } })
  const sisters: SisterNode[] = []
  const dispose = async () => {
    await Promise.all(sisters.map(s => s.engine.dispose()))
    for (const s of sisters) rmSync(s.pbsHome, { recursive: true, force: true })
  }
  try {
    for (let i = 1; i <= count; i++) {
      const engine = privateEngine(images)
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
