// Where pbs_server placed the job: its slots on each node, its GPUs on this one.
import { hostname } from 'node:os'
import { replaceFile } from '../lib/host/trusted.ts'
import { parseNodes, type NodeSpec } from '../lib/torque/nodes.ts'

/**
 * Where pbs_server placed the job, written as pbs_mom writes it before the prologue: each
 * node's slots in the node file (chunk by chunk where the spec's chunks are the nodes,
 * `1:ppn=2+1:ppn=1`), and with NVIDIA support this node's GPUs in the gpu file beside it.
 */
export function placeJob({ nodeFile, nodes, ppn, nodeNames, gpus: choice }: { nodeFile: string; nodes: string; ppn: number; nodeNames: string[]; gpus?: number[] }) {
  const chunks = specChunks(nodes)
  const perNode = chunks?.flatMap(c => Array<number>(c.count).fill(c.ppn))
  const slots = perNode?.length === nodeNames.length ? perNode : nodeNames.map(() => ppn)
  replaceFile(nodeFile, nodeNames.map((name, i) => `${name}\n`.repeat(slots[i])).join(''), 0o644)
  const asked = Number(/(?:^|:)gpus=(\d+)/.exec(nodes)?.[1] ?? 0)
  const gpus = asked ? (choice ?? Array.from({ length: asked }, (_, i) => i)).slice(0, asked) : []
  if (gpus.length) replaceFile(`${nodeFile}gpu`, gpus.map(i => `${hostname()}-gpu${i}\n`).join(''), 0o644)
  // Where the job's slots are, as pbs_server tells every node (exec_host: `host/0-1+host2/0`).
  const execHost = nodeNames.map((name, i) => `${name}/0${slots[i] > 1 ? `-${slots[i] - 1}` : ''}`).join('+')
  return { chunks, slots, gpus, execHost }
}

/** The node spec's chunks, or undefined for one pbs_server would take but cbatch cannot read (mom passes it on all the same). */
function specChunks(nodes: string): NodeSpec[] | undefined {
  try {
    return parseNodes(nodes)
  } catch {
    return undefined
  }
}
