// A job owner's own image carrying cbatch's labels (`LABEL cbatch.scratch=/some/path` in its
// Dockerfile): a container inherits its image's labels unless create sets them, and root's
// hooks read cbatch.* labels. Create sets every one (empty where it does not apply), so what
// the image says never reaches root: the job runs as any other, and the paths it named are
// left exactly as they were. docs/security.md maps the threat to these tests.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { containerName } from '../lib/job/container.ts'
import { LABEL } from '../lib/engine/labels.ts'
import { ENGINE_SOCKET, engineCli, engineCliQuiet, loadedName, TEST_ENGINE } from './helpers/engine.ts'
import { containersLeft, hostId, preparedJob, PROLOGUE, runHook, runJob, sharedDir, TEST_IMAGE, TEST_USER, writeConfig } from './helpers/jobs.ts'

t.setTimeout(5 * 60 * 1000)
const shared = sharedDir()
t.teardown(shared.dispose)
// Root's directory, as a scratch base is (the old epilogue chmodded such a base 0711 and
// emptied the job-named directory in it).
const root = `/var/lib/cbatch-test/labels-${process.pid}`
mkdirSync(root, { recursive: true, mode: 0o755 })
t.teardown(() => rmSync(root, { recursive: true, force: true }))
const owner = { uid: Number(hostId('-u')), gid: Number(hostId('-g')) }

// The job whose epilogue the second test runs, by a job id the image's author knew.
const jobId = `${process.pid}77.labels`
const name = containerName(jobId, PROLOGUE.batch.stateDir)
const canaryBase = join(root, 'canary')
mkdirSync(join(canaryBase, name), { recursive: true })
chmodSync(canaryBase, 0o755)
writeFileSync(join(canaryBase, name, 'keep'), 'root\'s own\n')
chownSync(join(canaryBase, name), owner.uid, owner.gid)
const canaryState = () => [
  (statSync(canaryBase).mode & 0o7777).toString(8), statSync(canaryBase).uid,
  readFileSync(join(canaryBase, name, 'keep'), 'utf8'), statSync(join(canaryBase, name)).uid,
].join(' ')
const pristine = canaryState()

// The owner's image: the queue's busybox with every label cbatch reads planted in it
// (`docker commit --change` is a Dockerfile's LABEL, with no build and no network), made
// in dockerd and loaded into the tests' engine (Podman's compatible commit takes no changes).
const image = `cbatch-test/labelled:${process.pid}`
const planted: Record<string, string> = {
  [LABEL.scratch]: join(canaryBase, name),
  [LABEL.cput]: '1',
  [LABEL.gpus]: '0,1',
  [LABEL.provisional]: 'true',
  [LABEL.node]: '3',
  [LABEL.mom]: join(shared.path, 'mom_priv'),
  [LABEL.shellFallback]: '/bin/evil',
  [LABEL.user]: 'root',
  [LABEL.uid]: '0',
  [LABEL.gid]: '0',
}
const made = execFileSync('docker', ['create', '--network', 'none', TEST_IMAGE, 'true'], { encoding: 'utf8' }).trim()
execFileSync('docker', ['commit', ...Object.entries(planted).flatMap(([k, v]) => ['--change', `LABEL ${k}=${JSON.stringify(v)}`]), made, image])
execFileSync('docker', ['rm', made])
t.teardown(() => { execFileSync('docker', ['rmi', '-f', image]) })
// The engine filters by the name it gave what it loaded.
const loaded = loadedName(image)
if (TEST_ENGINE !== 'docker') {
  execFileSync('sh', ['-c', `docker save '${image}' | docker -H unix://${ENGINE_SOCKET} load`], { stdio: 'ignore' })
  t.teardown(() => engineCliQuiet(['rmi', '-f', image]))
}
t.match(JSON.parse(engineCli(['image', 'inspect', '--format', '{{json .Config.Labels}}', image])), planted, 'the image carries the labels')

const accounting = join(root, 'accounting.jsonl')
const config = writeConfig(shared.path, `log: { file: ${root}/cbatch.log }
accounting: { file: ${accounting} }
queues:
  batch:
    image: ${TEST_IMAGE}
    pull: never
    allowedImages: ['cbatch-test/labelled:*']
  labelled:
    image: ${image}
    pull: never
  scratched:
    image: ${TEST_IMAGE}
    pull: never
    allowedImages: ['cbatch-test/labelled:*']
    scratch: { base: ${root}/scratch, target: /scratch }
`)
const accounted = (id: string) => readFileSync(accounting, 'utf8').split('\n').filter(Boolean)
  .map(l => JSON.parse(l) as { jobId: string; gpus?: number[]; nodeNumber: number; user: string }).find(r => r.jobId === id)

t.test('a job in an image with cbatch.* labels runs as any other: its labels are cbatch\'s, not the image\'s', async t => {
  for (const queue of ['batch', 'scratched']) {
    // Two seconds of CPU: the image's cbatch.cput=1 would have killed it.
    const ran = runJob(`#!/bin/sh
#CBATCH image=${image}
end=$(($(date +%s) + 3)); while [ "$(date +%s)" -lt "$end" ]; do :; done
echo "uid=$(id -u) cuda=\${CUDA_VISIBLE_DEVICES-unset} scratch=\${CBATCH_SCRATCH-unset}"
`, { config, queue })
    // Its container's labels while it runs, as root's hooks read them.
    let labels: Record<string, string> | undefined
    for (let i = 0; i < 100 && !labels; i++) {
      const id = engineCli(['ps', '-q', '--filter', `ancestor=${loaded}`, '--filter', 'label=cbatch.job']).trim().split('\n')[0]
      if (id) labels = JSON.parse(engineCli(['inspect', '--format', '{{json .Config.Labels}}', id]))
      else await new Promise(r => setTimeout(r, 100))
    }
    const { job } = await ran
    t.equal(job.exitStatus, 0, `${queue}: ${job.stderr}`)
    t.notMatch(job.stderr, /cput/, `${queue}: no cput limit came from the image`)
    t.match(job.stdout, `uid=${owner.uid} cuda=unset scratch=${queue === 'scratched' ? '/scratch' : 'unset'}\n`, `${queue}: as its owner, no GPUs, the queue's scratch only`)
    t.ok(labels, `${queue}: its container was seen`)
    t.match(labels, {
      [LABEL.job]: job.jobId, [LABEL.user]: TEST_USER, [LABEL.uid]: String(owner.uid), [LABEL.gid]: String(owner.gid),
      [LABEL.scratch]: queue === 'scratched' ? join(root, 'scratch', containerName(job.jobId, PROLOGUE.batch.stateDir)) : '',
      [LABEL.cput]: '', [LABEL.gpus]: '', [LABEL.provisional]: '', [LABEL.node]: '0', [LABEL.shellFallback]: '/bin/sh',
    }, `${queue}: every label is cbatch's`)
    t.not(labels?.[LABEL.mom], planted[LABEL.mom])
    t.match(accounted(job.jobId), { user: TEST_USER, nodeNumber: 0 })
    t.notOk(accounted(job.jobId)?.gpus, `${queue}: no GPUs in its accounting`)
    t.equal(canaryState(), pristine, `${queue}: the path the image named is untouched`)
  }
  t.same(execFileSync('ls', ['-A', join(root, 'scratch')], { encoding: 'utf8' }), '', 'the queue\'s own scratch directories are gone')
})

t.test('root\'s epilogue never touches a path an image\'s cbatch.scratch names, even one named after the job', async t => {
  // The image names the job's own directory name, under a root directory of its choosing:
  // the job id was known, the container name follows from it.
  await preparedJob(t, jobId, readFileSync(config, 'utf8'), 'labelled')
  const labels = JSON.parse(engineCli(['inspect', '--format', '{{json .Config.Labels}}', name]))
  t.equal(labels[LABEL.scratch], '', 'create set it empty over the image\'s')
  const epilogue = runHook('epilogue', [jobId, TEST_USER, TEST_USER, 'j', '0', '', '', 'labelled', '', '0'], { env: {}, config })
  t.equal(epilogue.status, 0, epilogue.stderr)
  t.same(await containersLeft(jobId), [], 'its container is gone (after the detached remover)')
  t.equal(canaryState(), pristine, 'mode, owner and content of what the label named are unchanged')
  t.notMatch(readFileSync(join(root, 'cbatch.log'), 'utf8'), canaryBase, 'nor was it ever tried')
})
