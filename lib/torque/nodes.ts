// How many nodes a job has and what it holds on this one, from what each hook can rely on.
// pbs_mom's PBS_NUM_NODES is 0 in the prologues of a spec that names a host
// (`nodes=vm:ppn=1`), and PBS_NUM_PPN is the first chunk's ppn on every node
// (docs/torque-contract.md, "Node counts in the environment"). So: the mother superior
// counts its node file (one line
// per slot, its own host first); a sister, which has no node file yet, takes its share
// from the node spec, chunk by chunk in the order pbs_server hands out nodes.
import { UsageError } from '../errors.ts'
import { parseCount } from './contract.ts'

export interface NodeSpec {
  /** `nodes=2:...`: how many nodes; a named node counts 1. */
  count: number
  name?: string
  ppn: number
  gpus: number
  properties: string[]
}

/** TORQUE's node spec, `2:ppn=4:gpus=1+node7:ppn=2:bigmem#excl` -> one spec per `+` part. */
export function parseNodes(spec: string): NodeSpec[] {
  // `#excl`, `#shared`: how the nodes are shared, not what the job holds on them.
  return spec.replace(/#[A-Za-z_]+$/, '').split('+').map(part => {
    const [head, ...rest] = part.split(':')
    if (!head) throw new UsageError(`nodes=${spec}: empty node spec`)
    const node: NodeSpec = /^\d+$/.test(head)
      ? { count: parseCount(head, `nodes=${spec}: node count`), ppn: 1, gpus: 0, properties: [] }
      : { count: 1, name: checkedName(head, spec), ppn: 1, gpus: 0, properties: [] }
    for (const item of rest) {
      const m = /^(ppn|gpus)=(\d+)$/.exec(item)
      if (m) node[m[1] as 'ppn' | 'gpus'] = m[1] === 'gpus' && m[2] === '0' ? 0 : parseCount(m[2], `nodes=${spec}: ${m[1]}`)
      else if (/^[A-Za-z0-9_.-]+$/.test(item)) node.properties.push(item)
      else throw new UsageError(`nodes=${spec}: ${JSON.stringify(item)} is not ppn=N, gpus=N or a node property`)
    }
    return node
  })
}

function checkedName(name: string, spec: string): string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) throw new UsageError(`nodes=${spec}: ${JSON.stringify(name)} is not a node count, host name or property`)
  return name
}

/** What the job is across its nodes, and what it holds on this one. */
export interface NodeShare {
  /** Nodes of the job (1 for a job that names none). */
  nodes: number
  /** This node's number: 0 on the mother superior. */
  number: number
  /** Processors (slots) of the job on this node, when known. */
  ppnHere?: number
  /** Processors of the job on all its nodes, when known. */
  npTotal?: number
  /** A sister's share before its job file says where the job's slots are (its chunks differ). */
  provisional?: true
}

/**
 * The job's shape as this hook can know it: `spec` is the Resource_List's node spec, `env`
 * pbs_mom's environment for the hook, `nodeFile` the node file's text if there is one (the
 * mother superior's). Anything the sources disagree on is refused, never guessed.
 */
export function nodeShare(spec: NodeSpec[], env: NodeJS.ProcessEnv, nodeFile?: string): NodeShare {
  const number = env.PBS_NODENUM === undefined ? 0 : nodeNumber(env.PBS_NODENUM)
  if (nodeFile !== undefined) {
    const slots = nodeFile.split('\n').map(l => l.trim()).filter(Boolean)
    if (slots.length) {
      const hosts = new Set(slots)
      // The node file is in exec_host order: the mother superior's own slots come first.
      return { nodes: hosts.size, number, ppnHere: slots.filter(h => h === slots[0]).length, npTotal: slots.length }
    }
  }
  const perNode = spec.flatMap(n => Array.from({ length: Math.min(n.count, 100_000) }, () => n.ppn))
  const told = (name: string) => (env[name] === undefined || env[name] === '0' ? undefined : parseCount(env[name]!, name))
  const nodes = told('PBS_NUM_NODES') ?? (perNode.length || 1)
  if (number >= nodes) throw new UsageError(`PBS_NODENUM=${number}, but the job has ${nodes} node${nodes > 1 ? 's' : ''}`)
  // The spec's chunks are the job's nodes, one for one, but pbs_server may hand them out in
  // any order: a sister knows its share for sure only when all chunks are alike. Otherwise it
  // starts with the smallest, never more than it may hold, until the job file says (sisterShare).
  if (perNode.length === nodes) {
    return { nodes, number, ppnHere: Math.min(...perNode), npTotal: perNode.reduce((a, b) => a + b, 0), ...(new Set(perNode).size > 1 ? { provisional: true } : {}) }
  }
  const ppn = told('PBS_NUM_PPN')
  const np = told('PBS_NP')
  return { nodes, number, ...(ppn !== undefined ? { ppnHere: ppn } : {}), ...(np !== undefined ? { npTotal: np } : {}) }
}

/** PBS_NODENUM: 0 on the mother superior. */
function nodeNumber(value: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new UsageError(`PBS_NODENUM ${JSON.stringify(value)} is not a node number`)
  return Number(value)
}

/** Node `number`'s share of a job with `slots` on each of its nodes (execHostSlots). */
export function slotsShare(slots: number[], number: number): Pick<NodeShare, 'nodes' | 'ppnHere' | 'npTotal'> {
  if (number >= slots.length) throw new UsageError(`the job's exec_host has no node ${number}`)
  return { nodes: slots.length, ppnHere: slots[number], npTotal: slots.reduce((a, b) => a + b, 0) }
}

/**
 * The job's slots on each of its nodes, by node number, from its exec_host (`vm2/0+vm/0-1,3`:
 * host/slots, `+`-joined), which pbs_mom saves in every node's job file: nodes are numbered by
 * their hosts' first appearance.
 */
export function execHostSlots(execHost: string): number[] {
  const slots = new Map<string, number>()
  for (const entry of execHost.split('+')) {
    const m = /^([^/]+)\/([\d,-]+)$/.exec(entry)
    if (!m) throw new UsageError(`exec_host ${JSON.stringify(execHost)}: ${JSON.stringify(entry)} is not host/slots`)
    const count = m[2].split(',').reduce((sum, range) => {
      const [from, to = from] = range.split('-').map(Number)
      if (!(to >= from)) throw new UsageError(`exec_host ${JSON.stringify(execHost)}: ${JSON.stringify(range)} is not a slot range`)
      return sum + to - from + 1
    }, 0)
    slots.set(m[1], (slots.get(m[1]) ?? 0) + count)
  }
  return [...slots.values()]
}
