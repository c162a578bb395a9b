// The one list of cbatch's programs for pbs_mom (lib/torque/hooks.ts) is what the build made
// and what the loader runs: a hook added there is built, wrapped and listed for install.sh.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BUNDLES, HOOKS, hookNamed, WRAPPED_HOOKS } from '../lib/torque/hooks.ts'
import { CANNOT_RUN_EXIT } from '../lib/torque/contract.ts'

const dist = join(import.meta.dirname, '../dist')

t.test('every program: a source, a built bundle, its exit when cbatch cannot run', async t => {
  t.same(HOOKS.map(h => h.name).sort(), Object.keys(CANNOT_RUN_EXIT).sort(), 'each program pbs_mom may run has its exit semantics')
  for (const bundle of BUNDLES) {
    t.ok(existsSync(join(import.meta.dirname, `../hooks/${bundle}.ts`)), `hooks/${bundle}.ts`)
    t.ok(existsSync(join(dist, 'cbatch.d', `${bundle}.cjs`)), `dist/cbatch.d/${bundle}.cjs (npm run build)`)
  }
  t.equal(hookNamed('prologue.parallel')?.bundle, 'prologue', 'a sister\'s script runs its hook\'s bundle')
  t.equal(hookNamed('nodecheck')?.cannotRunExit, 1)
  t.equal(hookNamed('nosuch'), undefined)
})

t.test('the build wraps each hook pbs_mom runs and lists it, with its mom_priv name, for install.sh', async t => {
  t.same(WRAPPED_HOOKS.map(h => h.name), ['prologue', 'prologue.parallel', 'jobstarter', 'epilogue', 'epilogue.parallel', 'nodecheck'])
  for (const { name } of WRAPPED_HOOKS) t.match(readFileSync(join(dist, name), 'utf8'), new RegExp(`^# cbatch ${name.replace('.', '\\.')} hook for pbs_mom `, 'm'))
  t.equal(readFileSync(join(dist, 'hooks.txt'), 'utf8'),
    'prologue prologue\nprologue.parallel prologue.parallel\njobstarter jobstarter\nepilogue epilogue\nepilogue.parallel epilogue.parallel\nnodecheck cbatch-nodecheck\n')
})
