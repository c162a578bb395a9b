// A requeued try of a job on the node waits for the earlier try's container, still being
// removed by its detached remover (hooks/remover.ts), instead of colliding with the name. Its
// prologue looks up the job's owner, the provisioned test user, through NSS: not in the unit
// tier until the prologue takes its NSS lookups from its context (test/remover.ts keeps the rest).
import t from 'tap'
import { parseConfig } from '../lib/policy/parse.ts'
import { NODE_HOST, prepareJob } from '../lib/job/prologue.ts'
import type { ContainerSpec } from '../lib/engine/engine.ts'
import { jobContext } from '../lib/torque/job.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { PROLOGUE, TEST_USER } from './helpers/jobs.ts'

t.test('a requeued try waits until the earlier try\'s container, still being removed, is gone', async t => {
  const config = parseConfig('queues:\n  batch: { image: img:1, pull: missing }\n')
  const job = jobContext({ jobId: '9.srv', user: TEST_USER, group: '', jobName: 'j', resources: 'nodes=1:ppn=1', queue: 'batch', account: '' }, {})
  // An engine like Docker: a name is taken until its container is gone, and a removal
  // asked for while another is under way returns at once (409) and removes nothing.
  class Removing extends FakeEngine {
    removing = new Set<string>()
    override async run(s: ContainerSpec): Promise<string> {
      if ([...this.containers.values()].some(c => c.name === s.name)) throw new Error(`Conflict: the name ${s.name} is in use`)
      return super.run(s)
    }
    override async remove(id: string): Promise<void> {
      this.calls.push(`remove ${id}`)
      if (this.removing.has(id)) return
      this.removing.add(id)
      setTimeout(() => this.containers.delete(id), 300)
    }
  }
  const engine = new Removing()
  engine.images.add('img:1')
  const first = await prepareJob(job, config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  if (first.kind !== 'container') throw new Error('no container')
  void engine.remove(first.id) // the earlier try's remover, under way
  const again = await prepareJob(job, config, engine, { ...PROLOGUE, host: { ...NODE_HOST, proveBinds: engine.proveBinds } })
  t.match(again, { kind: 'container', replaced: true })
  t.equal(engine.containers.size, 1, 'the earlier container is gone, the new one made')
})
