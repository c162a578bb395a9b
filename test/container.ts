import t from 'tap'
import { parseConfig } from '../lib/policy/parse.ts'
import { parseRequest } from '../lib/torque/request.ts'
import { buildContainerSpec, containerName, findJobContainer, type ContainerRequest } from '../lib/job/container.ts'
import { LABEL, labelOf } from '../lib/engine/labels.ts'
import { dockerCreateOptions } from '../lib/engine/docker.ts'
import { podmanRequestBody, podmanSpec } from '../lib/engine/podman.ts'
import { FakeEngine, testSpec } from './helpers/fake-engine.ts'
import { pbsMom } from '../lib/torque/mom.ts'

/** The spec as the Docker adapter sends it: what the engine is asked, as before the spec was neutral. */
const asDocker = (req: ContainerRequest) => dockerCreateOptions(buildContainerSpec(req))

const policy = parseConfig('queues:\n  batch:\n    image: img:1\n    volumes: [{source: /scratch}, {source: /sw, target: /opt/sw, readOnly: true}]\n').queues.get('batch')!
const owner = { name: 'alice', uid: 1001, gid: 1001, groups: [1001, 27, 3000], home: '/home/alice', shell: '/bin/bash' }
const SC = '/var/spool/torque/mom_priv/jobs/12.srv.SC'
const planned = [
  { source: '/scratch', target: '/scratch', readOnly: false, what: 'volume', identity: { dev: 1, ino: 2 } },
  { source: '/home/alice', target: '/home/alice', readOnly: false, what: 'home directory', identity: { dev: 1, ino: 3 } },
]
const request = (over: Partial<ContainerRequest> = {}): ContainerRequest => ({
  job: { jobId: '12.srv', queue: 'batch', request: parseRequest('nodes=1:ppn=2,mem=1gb') },
  owner, policy, version: '0.0.0', hostname: 'node1', node: {}, image: 'img:1', mounts: planned,
  paths: { nodeFile: '/var/spool/torque/aux/12.srv', script: SC, batch: pbsMom('/var/spool/torque/mom_priv') },
  ...over,
})

t.test('container names are valid, readable and unique per job id and mom', async t => {
  const mom = '/var/spool/torque/mom_priv'
  const name = containerName('123[4].server.example.com', mom)
  t.match(name, /^cbatch-123_4_\.server\.example\.com-[0-9a-f]{10}-[0-9a-f]{6}$/)
  t.not(containerName('1[2]', mom), containerName('1_2_', mom), 'sanitised alike, still distinct')
  t.ok(containerName('x'.repeat(300), mom).length < 100)
  // Two moms on one engine (multi-mom): the same job id, two containers.
  t.not(containerName('1.srv', mom), containerName('1.srv', '/var/spool/torque-mom2/mom_priv'))
  t.equal(containerName('1.srv', mom), containerName('1.srv', '/var/spool//torque/mom_priv/'), 'one mom, however its path is written')
  t.equal(asDocker(request()).name, containerName('12.srv', mom), 'the prologue names it so')
})

t.test('a job\'s container is found only by the mom whose prologue made it', async t => {
  const engine = new FakeEngine()
  const [a, b] = ['/var/spool/torque/mom_priv', '/var/spool/torque-mom2/mom_priv']
  const make = (name: string, labels: Record<string, string>) => engine.run(testSpec({ name, image: 'img:1', labels: labels }))
  const onA = await make(containerName('1.srv', a), { [LABEL.job]: '1.srv', [LABEL.mom]: a })
  const onB = await make(containerName('1.srv', b), { [LABEL.job]: '1.srv', [LABEL.mom]: b })
  t.equal((await findJobContainer(engine, '1.srv', a))?.id, onA)
  t.equal((await findJobContainer(engine, '1.srv', b))?.id, onB, 'a sister try of the same job on another mom of the engine')
  // Whatever has this mom's name is this mom's only if its label says so.
  await make(containerName('2.srv', a), { [LABEL.job]: '2.srv', [LABEL.mom]: b })
  t.equal(await findJobContainer(engine, '2.srv', a), undefined, 'labelled another mom\'s')
  await make(containerName('3.srv', a), { [LABEL.job]: '3.srv', [LABEL.mom]: '' })
  t.equal(await findJobContainer(engine, '3.srv', a), undefined, 'labelled no mom\'s')
  // A container an earlier cbatch named without its mom (a job that ran across an upgrade).
  const former = (jobId: string) => containerName(jobId, a).replace(/-[0-9a-f]{6}$/, '')
  const old = await make(former('4.srv'), { [LABEL.job]: '4.srv', [LABEL.mom]: a })
  t.equal((await findJobContainer(engine, '4.srv', a))?.id, old, 'by its former name, labelled this mom\'s')
  t.equal(await findJobContainer(engine, '4.srv', a, { former: false }), undefined, 'unless told not to look')
  t.equal(await findJobContainer(engine, '4.srv', b), undefined, 'never another mom\'s')
})

t.test('the job runs as its owner, confined; the holder as a uid the job cannot signal', async t => {
  const spec = asDocker(request())
  t.equal(spec.User, '65534:65534', 'the holder: not the owner, not root')
  t.same(spec.HostConfig!.GroupAdd, ['27', '3000'])
  t.same(spec.Entrypoint, [], 'no entrypoint of the image runs')
  t.same(spec.Cmd, ['sleep', 'infinity'])
  t.equal(spec.Image, 'img:1')
  t.equal(spec.Hostname, 'node1')
  t.match(spec.Labels, { 'cbatch.job': '12.srv', 'cbatch.user': 'alice', 'cbatch.uid': '1001', 'cbatch.gid': '1001', 'cbatch.queue': 'batch', 'cbatch.version': '0.0.0', 'cbatch.mom': '/var/spool/torque/mom_priv' })
  t.match(spec.HostConfig, {
    Init: true, NetworkMode: 'none', CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], Privileged: false,
    PidsLimit: 4096, Memory: 1024 ** 3, NanoCpus: 2e9,
  })
})

t.test('mounts: user databases, node file, script, then what mounts.ts planned', async t => {
  const mounts = asDocker(request()).HostConfig!.Mounts!.map(m => [m.Source, m.Target, m.ReadOnly])
  t.same(mounts, [
    ['/etc/passwd', '/etc/passwd', true],
    ['/etc/group', '/etc/group', true],
    ['/var/spool/torque/aux/12.srv', '/var/spool/torque/aux/12.srv', true],
    [SC, SC, true],
    ['/scratch', '/scratch', false],
    ['/home/alice', '/home/alice', false],
  ])
  const noNodeFile = asDocker(request({ paths: { batch: pbsMom('/var/spool/torque/mom_priv') } })).HostConfig!.Mounts!
  t.notOk(noNodeFile.some(m => m.Source.includes('/aux/')))
})

t.test('root, the holder\'s uid and scripts outside mom_priv are refused', async t => {
  t.throws(() => asDocker(request({ owner: { ...owner, uid: 0 } })), { name: 'PolicyError', message: /root is refused/ })
  t.throws(() => asDocker(request({ owner: { ...owner, gid: 0 } })), { name: 'PolicyError' })
  t.throws(() => asDocker(request({ owner: { ...owner, uid: 65534 } })), { name: 'PolicyError', message: /runs the container's holder/ })
  t.throws(() => asDocker(request({ owner: { ...owner, uid: 2 ** 32 } })), { name: 'PolicyError', message: /the engine cannot carry that uid/ })
  const elsewhere = request({ paths: { script: '/etc/shadow', batch: pbsMom('/var/spool/torque/mom_priv') } })
  t.throws(() => asDocker(elsewhere), { name: 'PolicyError', message: /not in \/var\/spool\/torque\/mom_priv\/jobs/ })
})

t.test('the queue\'s runtime, by the engine\'s name for it; none said: the engine\'s default', async t => {
  const gvisor = parseConfig('queues:\n  untrusted:\n    image: img:1\n    runtime: runsc\n').queues.get('untrusted')!
  t.equal(buildContainerSpec(request({ policy: gvisor })).runtime, 'runsc')
  t.equal(asDocker(request({ policy: gvisor })).HostConfig!.Runtime, 'runsc')
  t.equal(asDocker(request()).HostConfig!.Runtime, undefined)
  t.throws(() => parseConfig('queues:\n  q:\n    image: img:1\n    runtime: "runsc --debug"\n'), { message: /runtime: "runsc --debug" is not a runtime name such as runsc/ })
})

t.test('a signed image: made from the digest verified, labelled with its name as granted and its signer', async t => {
  const reference = `img@sha256:${'a'.repeat(64)}`
  const spec = buildContainerSpec(request({ signed: { reference, signer: 'cosign key sha256:ab (/k.pub)' } }))
  t.equal(spec.image, reference)
  t.equal(labelOf(spec.labels, LABEL.image), 'img:1')
  t.equal(labelOf(spec.labels, LABEL.signer), 'cosign key sha256:ab (/k.pub)')
  const unsigned = buildContainerSpec(request())
  t.equal(unsigned.image, 'img:1')
  t.equal(unsigned.labels[LABEL.signer], '', 'set empty: an image\'s own cbatch.signer label cannot show through')
})

t.test('network host keeps the host name', async t => {
  const spec = asDocker(request({ policy: { ...policy, network: 'host' } }))
  t.equal(spec.HostConfig!.NetworkMode, 'host')
  t.equal(spec.Hostname, undefined)
})

t.test('limits from the Resource_List and the queue', async t => {
  t.match(asDocker(request()).HostConfig, { Memory: 1024 ** 3, MemorySwap: 1024 ** 3, NanoCpus: 2e9, CgroupParent: undefined })
  const torque = asDocker(request({ policy: { ...policy, cgroupParent: 'torque', limits: { cpu: 'cpuset', defaultCpus: 1, maxMem: 2 * 1024 ** 3 } }, node: { torqueCpuset: '2-3' } }))
  t.match(torque.HostConfig, { CgroupParent: '/torque/12.srv', CpusetCpus: '2-3', NanoCpus: undefined })
  t.throws(() => asDocker(request({ policy: { ...policy, limits: { cpu: 'quota', defaultCpus: 1, maxMem: 512 * 1024 ** 2 } } })),
    { name: 'PolicyError', message: 'the job asks for 1 GiB of memory; its queue allows at most 512 MiB' })
})

t.test('on several nodes: each node\'s share of mem and vmem, /dev/shm as large as it, memlock per queue, the node labelled', async t => {
  // nodes=2:ppn=2 with mem=1gb: this node holds 2 of the job's 4 processors.
  const sister = asDocker(request({ node: { number: 1, ppnHere: 2, npTotal: 4 } }))
  t.match(sister.HostConfig, { Memory: 512 * 1024 ** 2, MemorySwap: 512 * 1024 ** 2, ShmSize: 512 * 1024 ** 2 })
  t.equal(sister.Labels!['cbatch.node'], '1')
  t.equal(asDocker(request()).Labels!['cbatch.node'], '0', 'the mother superior')
  const job = { ...request().job, request: parseRequest('nodes=1:ppn=2') }
  t.equal(asDocker(request({ job, node: { hostMemory: 8 * 1024 ** 3 } })).HostConfig!.ShmSize, 4 * 1024 ** 3,
    'no memory asked: half the node\'s, as a host /dev/shm')
  const mpi = asDocker(request({ policy: { ...policy, shmSize: 2 * 1024 ** 3, memlock: 'unlimited' } }))
  t.match(mpi.HostConfig, { ShmSize: 2 * 1024 ** 3 })
  t.same(mpi.HostConfig!.Ulimits!.find(u => u.Name === 'memlock'), { Name: 'memlock', Soft: -1, Hard: -1 })
  t.same(asDocker(request({ policy: { ...policy, memlock: 64 * 1024 ** 2 } })).HostConfig!.Ulimits!.find(u => u.Name === 'memlock'), { Name: 'memlock', Soft: 64 * 1024 ** 2, Hard: 64 * 1024 ** 2 })
})

t.test('every container has nofile and nproc, soft = hard: the queue\'s, bounded by what the engine can grant', async t => {
  const ulimits = (spec: ReturnType<typeof asDocker>) => Object.fromEntries(spec.HostConfig!.Ulimits!.map(u => [u.Name, [u.Soft, u.Hard]]))
  t.same(ulimits(asDocker(request())), { nofile: [65536, 65536], nproc: [65536, 65536] }, 'the defaults, where no bound is known')
  t.same(ulimits(asDocker(request({ policy: { ...policy, nofile: 1024, nproc: 2048 }, node: { rlimitCeilings: { nofile: 20000, nproc: 32768 } } }))),
    { nofile: [1024, 1024], nproc: [2048, 2048] }, 'the queue\'s, within the bounds')
  t.same(ulimits(asDocker(request({ node: { rlimitCeilings: { nofile: 20000, nproc: 32768 } } }))),
    { nofile: [20000, 20000], nproc: [32768, 32768] }, 'more than the engine can grant: what it can')
  t.same(ulimits(asDocker(request({ job: { ...request().job, request: parseRequest('nodes=1:ppn=1,file=1mb') } }))).fsize, [1024 ** 2, 1024 ** 2], 'beside the job\'s own')
  t.throws(() => parseConfig('queues:\n  b: { image: x, nofile: 10 }\n'), { name: 'ConfigError', message: /nofile/ })
  t.throws(() => parseConfig('queues:\n  b: { image: x, memlock: lots }\n'), { name: 'ConfigError', message: /memlock/ })
})

t.test('security options of the queue', async t => {
  const spec = asDocker(request({
    policy: { ...policy, capAdd: ['NET_BIND_SERVICE'], devices: [{ path: '/dev/fuse', permissions: 'rw' }], readOnlyRootfs: true, scratch: { base: '/var/tmp/cbatch', target: '/scratch' } },
    paths: { batch: pbsMom('/var/spool/torque/mom_priv'), scratchDir: '/var/tmp/cbatch/cbatch-12.srv-x' },
  }))
  t.match(spec.HostConfig, {
    CapDrop: ['ALL'], CapAdd: ['NET_BIND_SERVICE'], ReadonlyRootfs: true, Tmpfs: { '/tmp': `rw,nosuid,nodev,mode=1777,size=${1024 ** 3}` },
    Devices: [{ PathOnHost: '/dev/fuse', PathInContainer: '/dev/fuse', CgroupPermissions: 'rw' }],
  })
  t.notMatch(JSON.stringify(spec.HostConfig!.SecurityOpt), /seccomp|apparmor=unconfined/)
  t.same(spec.Env, ['CBATCH_SCRATCH=/scratch'])
  t.equal(spec.Labels!['cbatch.scratch'], '/var/tmp/cbatch/cbatch-12.srv-x')
  t.same(spec.HostConfig!.Mounts!.at(-1), { Type: 'bind', Source: '/var/tmp/cbatch/cbatch-12.srv-x', Target: '/scratch', ReadOnly: false })
  const plain = asDocker(request())
  t.match(plain.HostConfig, { CapAdd: undefined, Devices: [], ReadonlyRootfs: true })
  const writable = asDocker(request({ policy: { ...policy, readOnlyRootfs: false } }))
  t.match(writable.HostConfig, { ReadonlyRootfs: false, Tmpfs: undefined })
  t.same(plain.Env, [])
})

t.test('create sets every label cbatch reads, empty where it does not apply: an image\'s cbatch.* labels never show through', async t => {
  // The engine merges create's labels over the image's: a label left out would be the image's.
  const keys = Object.values(LABEL).sort()
  const bare = asDocker(request({ job: { ...request().job, request: parseRequest('nodes=1:ppn=1') } }))
  t.same(Object.keys(bare.Labels!).sort(), keys, 'no scratch, cput, gpus or provisional share asked: every key all the same')
  for (const key of [LABEL.scratch, LABEL.cput, LABEL.gpus, LABEL.provisional]) {
    t.equal(bare.Labels![key], '', `${key} is set empty`)
    t.equal(labelOf(bare.Labels, key), undefined, `and reads as absent`)
  }
  const full = asDocker(request({
    job: { ...request().job, request: parseRequest('nodes=1:ppn=1,cput=60') },
    policy: { ...policy, scratch: { base: '/var/tmp/cbatch', target: '/scratch' } },
    paths: { batch: pbsMom('/var/spool/torque/mom_priv'), scratchDir: '/var/tmp/cbatch/cbatch-12.srv-x' },
    node: { number: 2, provisional: true },
    gpus: { indices: [1, 3], devices: [], runtime: true },
  }))
  t.same(Object.keys(full.Labels!).sort(), keys)
  t.match(full.Labels, { [LABEL.scratch]: '/var/tmp/cbatch/cbatch-12.srv-x', [LABEL.cput]: '60', [LABEL.gpus]: '1,3', [LABEL.provisional]: 'true', [LABEL.node]: '2' })
  t.ok(Object.keys(LABEL).length >= 13 && keys.every(k => k.startsWith('cbatch.')))
})

t.test('labelOf: empty and missing alike are absent', async t => {
  t.equal(labelOf({ 'cbatch.scratch': '' }, LABEL.scratch), undefined)
  t.equal(labelOf({}, LABEL.scratch), undefined)
  t.equal(labelOf(undefined, LABEL.scratch), undefined)
  t.equal(labelOf({ 'cbatch.cput': '0' }, LABEL.cput), '0')
})

t.test('root only where the queue allows it', async t => {
  t.equal(asDocker(request({ owner: { ...owner, uid: 0, gid: 0 }, policy: { ...policy, allowRoot: true } })).Labels!['cbatch.uid'], '0')
})

t.test('GPUs: device requests through the NVIDIA runtime, else the device nodes, and none without', async t => {
  const gpus = { indices: [1, 3], devices: ['/x/dev/nvidia1', '/x/dev/nvidia3', '/x/dev/nvidiactl'] }
  const runtime = asDocker(request({ gpus: { ...gpus, runtime: true } })).HostConfig!
  t.same(runtime.DeviceRequests, [{ Driver: 'nvidia', DeviceIDs: ['1', '3'], Capabilities: [['gpu']] }])
  t.same(runtime.Devices, [])
  const nodes = asDocker(request({ gpus: { ...gpus, runtime: false } }))
  t.equal(nodes.HostConfig!.DeviceRequests, undefined)
  t.same(nodes.HostConfig!.Devices!.map((d: { PathOnHost?: string; PathInContainer?: string }) => [d.PathOnHost, d.PathInContainer]),
    [['/x/dev/nvidia1', '/dev/nvidia1'], ['/x/dev/nvidia3', '/dev/nvidia3'], ['/x/dev/nvidiactl', '/dev/nvidiactl']])
  t.equal(nodes.Labels!['cbatch.gpus'], '1,3')
  const none = asDocker(request())
  t.same([none.HostConfig!.Devices, none.HostConfig!.DeviceRequests, none.Labels!['cbatch.gpus']], [[], undefined, ''])
})

t.test('the spec is in cbatch\'s terms; the Docker adapter adds the confinement no spec can leave out', async t => {
  const spec = buildContainerSpec(request())
  t.match(spec, { image: 'img:1', user: '65534:65534', network: 'none', entrypoint: false, groups: ['27', '3000'], limits: { memoryBytes: 1024 ** 3 } })
  t.notOk('HostConfig' in spec)
  const bare = dockerCreateOptions({ ...spec, capAdd: [], devices: [], readOnlyRootfs: false, tmpSize: undefined })
  t.match(bare.HostConfig, { Init: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], Privileged: false, IpcMode: 'private', CapAdd: undefined, Tmpfs: undefined })
})

t.test('the Podman adapter asks libpod for the same container, confined alike, RLIM_INFINITY exact', async t => {
  const spec = { ...buildContainerSpec(request()), rlimits: { nofile: { soft: 1024, hard: 4096 }, memlock: { soft: 'unlimited', hard: 'unlimited' } } } as const
  const docker = dockerCreateOptions(spec).HostConfig!
  const sent = JSON.parse(podmanRequestBody(spec).toString('utf8').replace(/18446744073709551615/g, '"max"')) as Record<string, any>
  t.same(sent.mounts.filter((m: { type: string }) => m.type === 'bind').map((m: { source: string; destination: string; options: string[] }) => [m.source, m.destination, m.options]),
    docker.Mounts!.map(m => [m.Source, m.Target, ['rbind', m.ReadOnly ? 'ro' : 'rw']]), 'the same binds, none of them made if missing')
  t.same([sent.user, sent.groups, sent.netns, sent.read_only_filesystem, sent.shm_size], [spec.user, spec.groups, { nsmode: 'none' }, true, spec.shmSize])
  t.same([sent.init, sent.cap_drop, sent.no_new_privileges, sent.privileged, sent.ipcns, sent.log_configuration],
    [true, ['ALL'], true, false, { nsmode: 'private' }, { driver: 'none' }], 'CONFINEMENT, in libpod\'s terms')
  t.same(sent.entrypoint, [], 'no entrypoint unless the queue runs the image\'s')
  t.match(sent.mounts.find((m: { type: string }) => m.type === 'tmpfs'), { destination: '/tmp', options: ['rw', 'nosuid', 'nodev', 'mode=1777', `size=${spec.tmpSize}`] }, 'the writable /tmp of a read-only root')
  t.same(sent.resource_limits.memory, { limit: docker.Memory, swap: docker.MemorySwap })
  t.equal(sent.resource_limits.cpu.quota / sent.resource_limits.cpu.period, docker.NanoCpus! / 1e9)
  t.same(sent.r_limits, [{ type: 'nofile', soft: 1024, hard: 4096 }, { type: 'memlock', soft: 'max', hard: 'max' }], 'unlimited is RLIM_INFINITY, written exactly')
  t.same(podmanSpec({ ...spec, entrypoint: true, gpus: { driver: 'nvidia', ids: ['1'] } }).entrypoint, undefined, 'the image\'s entrypoint')
  // Every other field of the spec, each where libpod takes it.
  const full = {
    ...spec, env: ['A=1', 'B=x=y'], hostname: 'node1', capAdd: ['SYS_PTRACE'], runtime: 'runsc', cgroupParent: '/torque/1.srv', pidsLimit: 77,
    devices: [{ host: '/dev/fuse', container: '/dev/fuse', permissions: 'rwm' }], limits: { ...spec.limits, cpuset: '0-1' },
  }
  t.match(podmanSpec(full), {
    labels: full.labels, env: { A: '1', B: 'x=y' }, hostname: 'node1', cap_add: ['SYS_PTRACE'], oci_runtime: 'runsc', cgroup_parent: '/torque/1.srv', cgroups_mode: 'no-conmon',
    devices: [{ path: '/dev/fuse:/dev/fuse:rwm' }], resource_limits: { pids: { limit: 77 }, cpu: { cpus: '0-1' } }, oom_score_adj: 0, user: full.user,
  })
  t.same(podmanSpec({ ...full, network: 'host' }).netns, { nsmode: 'host' })
  t.notMatch(podmanRequestBody({ ...full, image: 'cbatch-rlim-infinity' }).toString('utf8'), /18446744073709551615.*18446744073709551615.*18446744073709551615/s,
    'only the rlimits asked unlimited are written as RLIM_INFINITY, whatever else the request says')
  t.match(podmanSpec({ ...spec, gpus: { driver: 'nvidia', ids: ['1'] } }).devices, [{ path: 'nvidia.com/gpu=1' }], 'GPUs by their CDI names')
})
