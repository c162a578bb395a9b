// lib/host/exec.ts: what a program root runs said as a result, never thrown, in a clean environment.
import t from 'tap'
import { execResult } from '../lib/host/exec.ts'

t.test('exit code, output and error; a program that cannot start is -1 with the reason', async t => {
  process.env.CBATCH_EXEC_PROBE = 'leaked'
  t.teardown(() => delete process.env.CBATCH_EXEC_PROBE)
  t.same(await execResult(['sh', '-c', 'echo out; echo err >&2; echo "${CBATCH_EXEC_PROBE:-clean} $LC_ALL"; exit 3']), { code: 3, stdout: 'out\nclean C\n', stderr: 'err\n' })
  t.same(await execResult(['true']), { code: 0, stdout: '', stderr: '' })
  t.match(await execResult(['/nonexistent/program']), { code: -1, stdout: '', stderr: /ENOENT/ })
  t.match(await execResult(['sh', '-c', 'head -c 2000 /dev/zero'], 1000), { code: -1, stderr: /maxBuffer/ })
})

t.test('a program that does not end within its timeout is killed: -1, and said so', async t => {
  const started = Date.now()
  t.same(await execResult(['sleep', '30'], undefined, 300), { code: -1, stdout: '', stderr: 'did not end within 0.3 s' })
  t.ok(Date.now() - started < 5000, 'not waited for')
  t.same(await execResult(['true'], undefined, 5000), { code: 0, stdout: '', stderr: '' })
})
