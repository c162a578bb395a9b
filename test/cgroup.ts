// cgroup v1 (this machine) and v2 layouts, as fixtures.
import t from 'tap'
import { oomKills, readUsage } from '../lib/host/cgroup.ts'
import { torqueCpuset } from '../lib/torque/cgroups.ts'

const ID = '/docker/abc123'

t.test('cgroup v1', async t => {
  const dir = (files: Record<string, string>) => ({ docker: { abc123: files } })
  const sysTree = ({
    cpuacct: dir({ 'cpuacct.usage': '2500000000\n', 'cpuacct.stat': 'user 180\nsystem 70\n' }),
    memory: dir({ 'memory.usage_in_bytes': '4096\n', 'memory.max_usage_in_bytes': '104857600\n', 'memory.limit_in_bytes': '268435456\n', 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n',
      'memory.stat': 'cache 1\nactive_file 1\ninactive_file 1\ntotal_cache 73400320\ntotal_shmem 4194304\ntotal_active_file 20971520\ntotal_inactive_file 48234496\n' }),
    cpu: dir({ 'cpu.cfs_quota_us': '150000\n', 'cpu.cfs_period_us': '100000\n' }),
    blkio: dir({ 'blkio.throttle.io_service_bytes': '8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n8:16 Read 1\n8:16 Write 2\nTotal 12291\n' }),
    pids: dir({ 'pids.peak': '7\n' }),
    cpuset: { torque: { '12.srv': { 'cpuset.cpus': '2-3\n' } }, ...dir({ 'cpuset.cpus': '0-1\n' }) },
  })
  const procTree = ({ 42: { cgroup: `9:name=systemd:${ID}\n8:pids:${ID}\n7:blkio:${ID}\n4:memory:${ID}\n3:cpuset:${ID}\n2:cpu,cpuacct:${ID}\n0::${ID}\n` } })
  const base = t.testdir({ sys: sysTree, proc: procTree })
  const roots = { sys: `${base}/sys`, proc: `${base}/proc` }
  t.same(readUsage(42, roots), {
    version: 1,
    cpu: { userSeconds: 1.8, systemSeconds: 0.7, totalSeconds: 2.5, limitCpus: 1.5, cpuset: '0-1' },
    // The page cache is the file LRU of the whole hierarchy (total_*): shmem is the job's own.
    memory: { currentBytes: 4096, peakBytes: 104857600, limitBytes: 268435456, oomKills: 1, pageCacheBytes: 69206016, ownPeakBytes: 35651584 },
    io: { readBytes: 4097, writeBytes: 8194 },
    pids: { peak: 7 },
  })
  t.equal(oomKills(42, roots), 1)
  t.equal(oomKills(43, roots), 0, 'no such process: cannot tell, 0')
  t.equal(torqueCpuset('12.srv', roots), '2-3')
  t.equal(torqueCpuset('13.srv', roots), undefined)
})

t.test('cgroup v1 without a memory limit', async t => {
  const sysTree = ({
    cpuacct: { x: { 'cpuacct.usage': '0', 'cpuacct.stat': 'user 0\nsystem 0\n' } },
    memory: { x: { 'memory.usage_in_bytes': '1', 'memory.max_usage_in_bytes': '1', 'memory.limit_in_bytes': '9223372036854771712', 'memory.oom_control': 'oom_kill_disable 0\n' } },
  })
  const procTree = ({ 1: { cgroup: '4:memory:/x\n2:cpuacct:/x\n' } })
  const base = t.testdir({ sys: sysTree, proc: procTree })
  const usage = readUsage(1, { sys: `${base}/sys`, proc: `${base}/proc` })
  t.equal(usage.memory.limitBytes, undefined)
  t.equal(usage.memory.oomKills, 0)
  t.same(usage.io, { readBytes: 0, writeBytes: 0 }, 'no blkio controller: nothing read')
  t.equal(usage.pids.peak, undefined)
})

t.test('cgroup v2', async t => {
  const sysTree = ({
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    docker: { abc123: {
      'cpu.stat': 'usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 0\n',
      'memory.current': '8192\n', 'memory.peak': '52428800\n', 'memory.max': 'max\n', 'cpu.max': 'max 100000\n', 'cpuset.cpus.effective': '0-3\n',
      'memory.stat': 'anon 1048576\nfile 47185920\nshmem 1048576\nactive_file 20971520\ninactive_file 25165824\n',
      'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n',
      'io.stat': '8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n',
      'pids.peak': '12\n',
    } },
    torque: { '12.srv': { 'cpuset.cpus.effective': '0-1\n' } },
  })
  const procTree = ({ 42: { cgroup: `0::${ID}\n` } })
  const base = t.testdir({ sys: sysTree, proc: procTree })
  const roots = { sys: `${base}/sys`, proc: `${base}/proc` }
  t.same(readUsage(42, roots), {
    version: 2,
    cpu: { userSeconds: 2, systemSeconds: 1, totalSeconds: 3, cpuset: '0-3' },
    memory: { currentBytes: 8192, peakBytes: 52428800, limitBytes: undefined, oomKills: 2, pageCacheBytes: 46137344, ownPeakBytes: 6291456 },
    io: { readBytes: 101, writeBytes: 202 },
    pids: { peak: 12 },
  })
  t.equal(oomKills(42, roots), 2)
  t.equal(torqueCpuset('12.srv', roots), '0-1')
})
