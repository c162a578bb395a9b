// The one place a runtime is chosen: the `engine:` section of cbatch.yaml becomes an Engine.
// Docker, or Podman's Docker-compatible service (its adapter reuses Docker's where they agree).
import { assertRootControlled } from '../host/trusted.ts'
import { DockerEngine } from './docker.ts'
import { PodmanEngine } from './podman.ts'
import type { Engine, EngineObserver } from './engine.ts'

export interface EngineConfig {
  /** Which engine answers on the socket (default docker). */
  kind?: 'docker' | 'podman'
  socket: string
  /** Deadline of one engine call, seconds. */
  timeout: number
  /** Deadline of an image pull, seconds. */
  pullTimeout: number
}

/** The node's engine, as configured. Only root's socket is believed. */
export function openEngine(engine: EngineConfig, observer?: EngineObserver): Engine {
  // A socket that is not there is an engine that is down (requeue), not a threat.
  assertRootControlled(engine.socket, 'engine socket', { mayBeMissing: true })
  const options = { socket: engine.socket, timeoutMs: engine.timeout * 1000, pullTimeoutMs: engine.pullTimeout * 1000, onCall: observer }
  return engine.kind === 'podman' ? new PodmanEngine(options) : new DockerEngine(options)
}
