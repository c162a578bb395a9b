import t from 'tap'
import { parseCount, parseDuration, parseEpilogueArgs, parsePrologueArgs, parseResourceList, parseSize, starterFacts } from '../lib/torque/contract.ts'

const SC = '/var/spool/torque/mom_priv/jobs/12.srv.SC'

t.test('prologue: 8 arguments of TORQUE 6, 7 of 4.x/5.x', async t => {
  const six = parsePrologueArgs(['12.srv', 'alice', 'users', 'job', 'nodes=1:ppn=2', 'batch', '', SC])
  t.same(six, { jobId: '12.srv', user: 'alice', group: 'users', jobName: 'job', resources: 'nodes=1:ppn=2', queue: 'batch', account: '', scriptPath: SC })
  const five = parsePrologueArgs(['12.srv', 'alice', 'users', 'job', '', 'batch', 'acct'])
  t.equal(five.scriptPath, undefined)
  t.equal(five.account, 'acct')
  t.throws(() => parsePrologueArgs(['12.srv']), { name: 'UsageError', message: /7 or 8 arguments.*got 1/ })
  t.throws(() => parsePrologueArgs(['', 'a', 'g', 'n', '', 'q', '', SC]), { message: /empty job id/ })
  t.throws(() => parsePrologueArgs(['1', '', 'g', 'n', '', 'q', '', SC]), { message: /empty job owner/ })
  t.throws(() => parsePrologueArgs(['1', 'a', 'g', 'n', '', 'q', '', 'jobs/1.SC']), { message: /not absolute/ })
})

t.test('epilogue: 11 arguments of TORQUE 6, 10 of older ones', async t => {
  const args = ['12.srv', 'alice', 'users', 'job', '4242', 'nodes=1', 'cput=00:00:01', 'batch', '', '271']
  const old = parseEpilogueArgs(args)
  t.equal(old.exitStatus, 271)
  t.equal(old.sessionId, '4242')
  t.equal(old.queue, 'batch')
  t.equal(parseEpilogueArgs([...args, SC]).scriptPath, SC)
  t.equal(parseEpilogueArgs(args.map((a, i) => (i === 9 ? '-11' : a))).exitStatus, -11)
  t.throws(() => parseEpilogueArgs(args.slice(0, 9)), { message: /10 or 11 arguments/ })
  t.throws(() => parseEpilogueArgs(args.map((a, i) => (i === 9 ? 'x' : a))), { message: /not a number/ })
})

t.test('starter facts come from what pbs_mom sets', async t => {
  const env = { PBS_JOBID: '1.s', USER: 'alice', PBS_QUEUE: 'batch', HOME: '/home/alice' }
  t.same(starterFacts(env), { jobId: '1.s', task: 1, user: 'alice', queue: 'batch', home: '/home/alice', workDir: '/home/alice' })
  t.equal(starterFacts({ ...env, PBS_O_INITDIR: '/data' }).workDir, '/data')
  t.throws(() => starterFacts({ ...env, PBS_JOBID: '' }), { name: 'UsageError', message: /PBS_JOBID is not set/ })
})

t.test('a TM task\'s USER is the job\'s own variable: never taken as a fact', async t => {
  const task = { PBS_JOBID: '1.s', PBS_TASKNUM: '3', PBS_QUEUE: 'batch', HOME: '/home/alice', USER: 'root' }
  t.same(starterFacts(task), { jobId: '1.s', task: 3, user: undefined, queue: 'batch', home: '/home/alice', workDir: '/home/alice' })
  t.equal(starterFacts({ ...task, USER: undefined }).user, undefined, 'tasks need no USER')
  t.throws(() => starterFacts({ ...task, PBS_TASKNUM: '1', USER: undefined }), { message: /USER is not set/ }, 'the job shell does')
  for (const bad of ['0', '-1', 'x', '1e3', '99999999999']) {
    t.throws(() => starterFacts({ ...task, PBS_TASKNUM: bad }), { message: /not a task number/ }, bad)
  }
})

t.test('sizes never mean "no limit" and never overflow', async t => {
  for (const zero of ['0', '0b', '0kb', '0gb', '00mw']) t.throws(() => parseSize(zero), { name: 'UsageError', message: /is 0/ }, zero)
  for (const huge of ['99999999999999999999', '9999999999tb', '9007199254740993']) {
    t.throws(() => parseSize(huge), { name: 'UsageError', message: /too large/ }, huge)
  }
  t.equal(parseCount('8', 'ppn'), 8)
  for (const bad of ['0', '-1', '1.5', '', '99999999', '1000001', ' 1']) t.throws(() => parseCount(bad, 'ppn'), { name: 'UsageError' }, bad)
})

t.test('Resource_List', async t => {
  const list = parseResourceList('neednodes=1:ppn=2,nodes=1:ppn=2,mem=4gb,walltime=01:00:00')
  t.equal(list.get('nodes'), '1:ppn=2')
  t.equal(list.get('mem'), '4gb')
  t.equal(parseResourceList('').size, 0)
  t.throws(() => parseResourceList('nodes'), { message: /not name=value/ })
})

t.test('sizes', async t => {
  t.equal(parseSize('100'), 100)
  t.equal(parseSize('100b'), 100)
  t.equal(parseSize('4kb'), 4096)
  t.equal(parseSize('512mb'), 512 * 1024 ** 2)
  t.equal(parseSize('4GB'), 4 * 1024 ** 3)
  t.equal(parseSize('1tb'), 1024 ** 4)
  t.equal(parseSize('2kw'), 2 * 1024 * 8)
  for (const bad of ['', 'gb', '1.5gb', '-1mb', '4xb']) t.throws(() => parseSize(bad), { name: 'UsageError' }, bad)
})

t.test('durations', async t => {
  t.equal(parseDuration('01:00:00'), 3600)
  t.equal(parseDuration('100:00:01'), 360001)
  t.equal(parseDuration('05:30'), 330)
  t.equal(parseDuration('90'), 90)
  for (const bad of ['', '1:2:3:4', '00:60', '01:60:00', 'x']) t.throws(() => parseDuration(bad), { name: 'UsageError' }, bad)
})
