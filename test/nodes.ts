// The job's nodes and this node's share, for every node spec TORQUE takes, as a real
// pbs_mom hands them to the prologues (PBS_NUM_NODES=0 when the spec names a host).
import t from 'tap'
import { execHostSlots, nodeShare, parseNodes, slotsShare } from '../lib/torque/nodes.ts'
import { parseRequest } from '../lib/torque/request.ts'

/** The node spec of a Resource_List. */
const specOf = (resources: string) => parseRequest(resources).nodes
const sister = (number: number, extra: Record<string, string> = {}) => ({ PBS_NODENUM: String(number), ...extra })

t.test('every node spec form parses: counts, host names, properties, + chains, ppn, gpus, #excl', async t => {
  t.same(parseNodes('vm:ppn=1'), [{ count: 1, name: 'vm', ppn: 1, gpus: 0, properties: [] }])
  t.same(parseNodes('vm+1:ppn=2'), [{ count: 1, name: 'vm', ppn: 1, gpus: 0, properties: [] }, { count: 1, ppn: 2, gpus: 0, properties: [] }])
  t.same(parseNodes('2:bigmem:ppn=4:gpus=1#excl'), [{ count: 2, ppn: 4, gpus: 1, properties: ['bigmem'] }])
  t.same(parseNodes('node-7.cluster:ppn=2+vm2:ppn=1').map(n => n.name), ['node-7.cluster', 'vm2'])
  for (const bad of ['', '+1', '1:ppn=0', '1:ppn=x', 'vm:mem=1gb', '-vm', 'a b', '0']) t.throws(() => parseNodes(bad), { name: 'UsageError' }, bad)
})

t.test('the mother superior counts its node file, whatever PBS_NUM_NODES says', async t => {
  // nodes=vm:ppn=2+vm2:ppn=1: a real mom says PBS_NUM_NODES=0 and PBS_NUM_PPN=2 everywhere.
  const env = { PBS_NODENUM: '0', PBS_NUM_NODES: '0', PBS_NUM_PPN: '2', PBS_NP: '2' }
  t.same(nodeShare(specOf('nodes=vm:ppn=2+vm2:ppn=1'), env, 'vm\nvm\nvm2\n'), { nodes: 2, number: 0, ppnHere: 2, npTotal: 3 })
  t.same(nodeShare(specOf('nodes=vm:ppn=1'), env, 'vm\n'), { nodes: 1, number: 0, ppnHere: 1, npTotal: 1 })
  t.same(nodeShare(specOf('nodes=vm+1:ppn=2'), env, 'vm\nvm2\nvm2\n'), { nodes: 2, number: 0, ppnHere: 1, npTotal: 3 })
  t.same(nodeShare(specOf('procs=3'), {}, 'vm\nvm\nvm\n'), { nodes: 1, number: 0, ppnHere: 3, npTotal: 3 })
})

t.test('a sister takes its share from the spec when its chunks are alike, else the smallest until the job file says', async t => {
  t.same(nodeShare(specOf('nodes=3:ppn=2:gpus=1'), sister(2, { PBS_NUM_NODES: '3', PBS_NUM_PPN: '2' })), { nodes: 3, number: 2, ppnHere: 2, npTotal: 6 })
  t.same(nodeShare(specOf('nodes=2:bigmem:ppn=4'), sister(1, { PBS_NUM_NODES: '2' })), { nodes: 2, number: 1, ppnHere: 4, npTotal: 8 })
  t.same(nodeShare(specOf('nodes=vm:ppn=2+vm2:ppn=2'), sister(1, { PBS_NUM_NODES: '0' })), { nodes: 2, number: 1, ppnHere: 2, npTotal: 4 })
  // nodes=1:ppn=2+1:ppn=1: pbs_server may give either chunk to the mother superior (seen:
  // exec_host vm2/0+vm/0-1), and PBS_NUM_PPN is the first chunk's on every node.
  t.same(nodeShare(specOf('nodes=1:ppn=2+1:ppn=1'), sister(1, { PBS_NUM_NODES: '2', PBS_NUM_PPN: '2', PBS_NP: '3' })), { nodes: 2, number: 1, ppnHere: 1, npTotal: 3, provisional: true })
  t.same(nodeShare(specOf('nodes=vm:ppn=1+vm2:ppn=3'), sister(1, { PBS_NUM_NODES: '0', PBS_NUM_PPN: '1' })), { nodes: 2, number: 1, ppnHere: 1, npTotal: 4, provisional: true })
  t.same(nodeShare(specOf('nodes=vm+1:ppn=2'), sister(1, { PBS_NUM_NODES: '0' })), { nodes: 2, number: 1, ppnHere: 1, npTotal: 3, provisional: true })
})

t.test('exec_host says each node\'s share: nodes numbered by their hosts\' first appearance', async t => {
  t.same(slotsShare(execHostSlots('vm2/0+vm/0-1'), 0), { nodes: 2, ppnHere: 1, npTotal: 3 })
  t.same(slotsShare(execHostSlots('vm2/0+vm/0-1'), 1), { nodes: 2, ppnHere: 2, npTotal: 3 })
  t.same(slotsShare(execHostSlots('a/0-1,4+b/2+a/7'), 0), { nodes: 2, ppnHere: 4, npTotal: 5 })
  for (const bad of ['', 'vm', 'vm/', 'vm/1-0', 'vm/x']) t.throws(() => execHostSlots(bad), { name: 'UsageError' }, bad)
  t.throws(() => slotsShare(execHostSlots('vm/0'), 1), { message: /has no node 1/ })
})

t.test('a job that names no nodes has one; pbs_mom\'s numbers serve where the spec cannot say', async t => {
  t.same(nodeShare(specOf('walltime=10'), {}), { nodes: 1, number: 0 })
  t.same(nodeShare(specOf('walltime=10'), { PBS_NUM_NODES: '1', PBS_NUM_PPN: '1', PBS_NP: '1' }), { nodes: 1, number: 0, ppnHere: 1, npTotal: 1 })
  // More nodes than chunks say (a spec pbs_server rewrote): mom's numbers.
  t.same(nodeShare(specOf('nodes=1:ppn=2'), sister(1, { PBS_NUM_NODES: '2', PBS_NUM_PPN: '2', PBS_NP: '4' })), { nodes: 2, number: 1, ppnHere: 2, npTotal: 4 })
})

t.test('numbers that cannot be are refused, never guessed', async t => {
  t.throws(() => nodeShare(specOf('nodes=vm:ppn=1'), sister(1, { PBS_NUM_NODES: '0' })), { name: 'UsageError', message: /PBS_NODENUM=1, but the job has 1 node/ })
  t.throws(() => nodeShare(specOf('nodes=1'), { PBS_NODENUM: 'x' }), { message: /PBS_NODENUM "x" is not a node number/ })
  t.throws(() => nodeShare(specOf('nodes=1'), { PBS_NUM_NODES: '-1' }), { message: /PBS_NUM_NODES=-1 is not a whole number/ })
})
