// The engine the integration tests run against: the main dockerd, or with
// CBATCH_TEST_ENGINE=podman (npm run test:podman) the rootful Podman service that
// scripts/provision.sh starts. Tests reach it only through here: its socket, the adapter,
// the docker CLI pointed at it, and the `engine:` section of their configs.
import { execFileSync, spawnSync, type ExecFileSyncOptions } from 'node:child_process'
import { parseDocument } from 'yaml'
import { openEngine } from '../../lib/engine/open.ts'
import type { Engine } from '../../lib/engine/engine.ts'

export const PODMAN_SOCKET = '/run/cbatch-podman/podman.sock'
export const DOCKER_SOCKET = '/var/run/docker.sock'

export const TEST_ENGINE: 'docker' | 'podman' = process.env.CBATCH_TEST_ENGINE === 'podman' ? 'podman' : 'docker'
if (process.env.CBATCH_TEST_ENGINE && process.env.CBATCH_TEST_ENGINE !== TEST_ENGINE) {
  throw new Error(`CBATCH_TEST_ENGINE=${process.env.CBATCH_TEST_ENGINE}: docker or podman`)
}
export const ENGINE_SOCKET = TEST_ENGINE === 'podman' ? PODMAN_SOCKET : DOCKER_SOCKET

/** Shell words that say whether they run in a container, under either engine. */
export const IN_CONTAINER = 'test -e /.dockerenv -o -e /run/.containerenv'

/** The name the tests' engine gives an image loaded into it: Podman's are localhost/<name>. */
export function loadedName(image: string): string {
  return TEST_ENGINE === 'podman' ? `localhost/${image}` : image
}

/** The adapter of the tests' engine, as openEngine makes it from a config. */
export function testEngine({ timeoutMs = 30_000, pullTimeoutMs = 60_000 } = {}): Engine {
  return openEngine({ kind: TEST_ENGINE, socket: ENGINE_SOCKET, timeout: timeoutMs / 1000, pullTimeout: pullTimeoutMs / 1000 })
}

/** The docker CLI against the tests' engine (Podman's service speaks its API). */
export function engineCli(args: string[], options: ExecFileSyncOptions = {}): string {
  return String(execFileSync('docker', ['-H', `unix://${ENGINE_SOCKET}`, ...args], { encoding: 'utf8', ...options }) ?? '')
}

/** The same, never throwing (teardowns). */
export function engineCliQuiet(args: string[]): void {
  spawnSync('docker', ['-H', `unix://${ENGINE_SOCKET}`, ...args], { stdio: 'ignore' })
}

/** A config's text with the tests' engine, unless it names an engine socket of its own. */
export function withTestEngine(yaml: string): string {
  if (TEST_ENGINE === 'docker') return yaml
  const doc = parseDocument(yaml)
  if (doc.errors.length || doc.hasIn(['engine', 'socket'])) return yaml
  doc.setIn(['engine', 'kind'], TEST_ENGINE)
  doc.setIn(['engine', 'socket'], ENGINE_SOCKET)
  return doc.toString()
}
