// The job's GPUs on this node. pbs_mom (built with NVIDIA support) allocates them and
// writes them, before the prologue, into the job's gpu file: PBS_NODEFILE's path with
// `gpu` appended, a line `<host>-gpu<index>` per GPU of the job (src/resmom/start_exec.c,
// write_attr_to_file). The container gets those and no others: as NVIDIA device requests
// when the engine has the NVIDIA runtime, else as the device nodes themselves.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { PolicyError } from '../errors.ts'

/** What every NVIDIA GPU needs beside its own /dev/nvidiaN, where the node has them. */
export const NVIDIA_CONTROL_DEVICES = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset']

export interface JobGpus {
  /** The node's indices of the job's GPUs, as pbs_mom gave them. */
  indices: number[]
  /** Host device nodes to give the container (without the NVIDIA runtime). */
  devices: string[]
}

/** GPUs pbs_mom gave the job on `host` (short or full name), from its gpu file. */
export function allocatedGpus(gpuFile: string, host: string): number[] {
  let text: string
  try {
    text = readFileSync(gpuFile, 'utf8')
  } catch {
    return []
  }
  const names = new Set([host, host.split('.')[0]])
  const indices: number[] = []
  for (const line of text.split('\n').map(l => l.trim()).filter(Boolean)) {
    const m = /^(.+)-gpu(\d{1,4})$/.exec(line)
    if (m && (names.has(m[1]) || names.has(m[1].split('.')[0]))) indices.push(Number(m[2]))
  }
  return [...new Set(indices)].sort((a, b) => a - b)
}

/**
 * The job's `asked` GPUs on this node, checked against what pbs_mom gave and what the node
 * has (device nodes in `deviceDir`): a job is never given fewer, more or other GPUs.
 */
export function jobGpus(asked: number, given: number[], deviceDir: string): JobGpus {
  if (given.length < asked) {
    throw new PolicyError(`the job asks for ${asked} GPU${asked > 1 ? 's' : ''}; pbs_mom gave it ${given.length} on this node`
      + (given.length ? '' : ' (is pbs_mom built with NVIDIA GPU support, and does the node have them?)'))
  }
  const indices = given.slice(0, asked)
  const devices = indices.map(i => join(deviceDir, `nvidia${i}`))
  const missing = devices.filter(d => !isCharDevice(d))
  if (missing.length) throw new PolicyError(`the job asks for GPU ${missing.map(d => basename(d).slice(6)).join(', ')}, which this node does not have`)
  return { indices, devices: [...devices, ...NVIDIA_CONTROL_DEVICES.map(d => join(deviceDir, d)).filter(isCharDevice)] }
}

function isCharDevice(path: string): boolean {
  try {
    return existsSync(path) && statSync(path).isCharacterDevice()
  } catch {
    return false
  }
}

/**
 * CUDA_VISIBLE_DEVICES in the container: its GPUs as the container shows them, numbered
 * from 0 (pbs_mom's value names the node's indices). None without GPUs.
 */
export function visibleDevicesInside(env: NodeJS.ProcessEnv, gpus: string | undefined): NodeJS.ProcessEnv {
  const { CUDA_VISIBLE_DEVICES: _, ...rest } = env
  const count = gpus ? gpus.split(',').length : 0
  return count ? { ...rest, CUDA_VISIBLE_DEVICES: Array.from({ length: count }, (_, i) => i).join(',') } : rest
}
