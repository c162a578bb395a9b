// A requeued try of a job on the node waits for the earlier try's container, still being
// removed by its detached remover (hooks/remover.ts), instead of colliding with the name.
// On a fake node and engine (test/helpers/fake-host.ts); the remover's own kill from the host
// is test/remover.integration.ts's.
import t from 'tap'
import { join } from 'node:path'
import { parseConfig } from '../lib/policy/parse.ts'
import { prepareJob } from '../lib/job/prologue.ts'
import type { ContainerSpec } from '../lib/engine/engine.ts'
import { jobContext } from '../lib/torque/job.ts'
import { FakeEngine } from './helpers/fake-engine.ts'
import { fakeHost, OWNER } from './helpers/fake-host.ts'
import { pbsMom } from '../lib/torque/mom.ts'

t.test('a requeued try waits until the earlier try\'s container, still being removed, is gone', async t => {
  const config = parseConfig('queues:\n  batch: { image: img:1, pull: missing }\n')
  const job = jobContext({ jobId: '9.srv', user: OWNER.name, group: '', jobName: 'j', resources: 'nodes=1:ppn=1', queue: 'batch', account: '' }, {})
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
  const context = { batch: pbsMom(join(t.testdir({ mom_priv: { jobs: {} } }), 'mom_priv')), host: fakeHost(engine) }
  const first = await prepareJob(job, config, engine, context)
  if (first.kind !== 'container') throw new Error('no container')
  void engine.remove(first.id) // the earlier try's remover, under way
  const again = await prepareJob(job, config, engine, context)
  t.match(again, { kind: 'container', replaced: true })
  t.equal(engine.containers.size, 1, 'the earlier container is gone, the new one made')
})
