// A hook's CPU on its node log line (cpuMs) is its own and its children's since it began:
// pbs_mom runs the prologue from the process that then execs the job starter, whose count of
// waited-for children's CPU so starts with the prologue's; it is not the starter's.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hooksFor } from '../emulator/emulator.ts'
import { sharedDir, testConfig } from './helpers/jobs.ts'

t.test('CPU a hook\'s process had spent in children before the hook began is not the hook\'s', async t => {
  const shared = sharedDir()
  t.teardown(shared.dispose)
  const config = testConfig(shared.path)
  const epilogue = join(hooksFor(join(import.meta.dirname, '../dist'), config), 'epilogue')
  // A child burns about 1.5 s of CPU and is waited for; then the shell execs the hook.
  const burn = 'dd if=/dev/zero of=/dev/null bs=64k count=400000 2>/dev/null; exec "$0" "$@"'
  const r = spawnSync('/bin/sh', ['-c', burn, epilogue, '77.nowhere', 'cbatchtest', 'cbatchtest', 'j', '1', 'nodes=1', 'cput=0', 'batch', 'a', '0'], { encoding: 'utf8', env: {}, cwd: '/' })
  t.equal(r.status, 0, r.stderr)
  const exit = readFileSync(join(shared.path, 'cbatch.log'), 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l) as { job: string; message: string; cpuMs?: number })
    .find(l => l.job === '77.nowhere' && l.message === 'exit 0')
  t.ok(exit, 'the epilogue logged its exit line')
  t.ok(exit!.cpuMs! < 1000, `the epilogue's own CPU, without the dd before it: ${exit!.cpuMs} ms`)
})
