// A Docker engine of the test's own, to stop and start at will without disturbing the
// main one: its own socket, data root, exec root and containerd. No bridge, ever.
import { execSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { TEST_IMAGE } from './jobs.ts'

export interface PrivateEngine {
  socket: string
  start(): Promise<void>
  stop(): Promise<void>
  dispose(): Promise<void>
}

export function privateEngine(): PrivateEngine {
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
      execSync(`docker save ${TEST_IMAGE} | docker -H unix://${socket} load`, { stdio: 'ignore' })
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
      execSync(`umount -R ${dir}/data 2>/dev/null; umount -R ${dir}/exec 2>/dev/null; true`)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  return engine
}
