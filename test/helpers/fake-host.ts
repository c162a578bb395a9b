// A node for the prologue that is no real one (lib/job/prologue.ts PrologueHost): an owner
// as NSS would answer, no host paths of the owner's, fixed facts, and the bind proof of the
// FakeEngine, which mounts nothing. The prologue's orchestration runs on it without a
// provisioned node: no test users, no setpriv, no /proc of an engine.
import type { PrologueHost } from '../../lib/job/prologue.ts'
import type { Identity } from '../../lib/host/identity.ts'
import type { FakeEngine } from './fake-engine.ts'

export const OWNER: Identity = { name: 'alice', uid: 1001, gid: 1001, groups: [1001, 3000], home: '/home/alice', shell: '/bin/sh' }

/** `calls`: the name of each of its operations the prologue used, in order; `imagesUsed`: the images it recorded. */
export function fakeHost(engine: FakeEngine, over: Partial<PrologueHost> = {}): PrologueHost & { calls: string[]; imagesUsed: string[] } {
  const calls: string[] = []
  const imagesUsed: string[] = []
  const host: PrologueHost = {
    lookupUser: async name => ({ ...OWNER, name }),
    accountLines: async owner => ({ passwd: `${owner.name}:x:${owner.uid}:${owner.gid}::${owner.home}:${owner.shell}`, groups: [`${owner.name}:x:${owner.gid}:`] }),
    planMounts: async () => [],
    makeScratch: async () => {
      throw new Error('fake host: no scratch base')
    },
    facts: () => ({ hostname: 'node1', memoryBytes: 8 * 1024 ** 3, cpus: 4, rlimitCeilings: { nofile: 1 << 20, nproc: 1 << 20 } }),
    recordImageUse: image => imagesUsed.push(image),
    proveBinds: (pid, binds) => engine.proveBinds(pid, binds),
    ...over,
  }
  const recorded = Object.fromEntries(Object.entries(host).map(([name, op]) =>
    [name, (...args: unknown[]) => (calls.push(name), (op as (...a: unknown[]) => unknown)(...args))])) as unknown as PrologueHost
  return { ...recorded, calls, imagesUsed }
}
