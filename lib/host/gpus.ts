// The job's GPUs on this node: those the batch system gave it (torque/job.ts) and no others,
// as NVIDIA device requests when the engine has the NVIDIA runtime, else as the device
// nodes themselves.
import { existsSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { PolicyError } from '../errors.ts'

/** What every NVIDIA GPU needs beside its own /dev/nvidiaN, where the node has them. */
export const NVIDIA_CONTROL_DEVICES = ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset']

export interface JobGpus {
  /** The node's indices of the job's GPUs, as the batch system gave them. */
  indices: number[]
  /** Host device nodes to give the container (without the NVIDIA runtime). */
  devices: string[]
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
