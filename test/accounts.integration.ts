import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { accountLines, writeAccountFiles } from '../lib/host/accounts.ts'
import { lookupUser } from '../lib/host/identity.ts'
import { NSS_USER, TEST_USER } from './helpers/jobs.ts'

t.test('the node\'s accounts, with the owner and their groups added as NSS knows them', async t => {
  const etc = t.testdir({ passwd: `root:x:0:0:root:/root:/bin/sh\n${TEST_USER}:x:1:1::/h:/bin/sh\n`, group: 'root:x:0:\n' })
  const nss = await lookupUser(NSS_USER)
  const files = writeAccountFiles(join(etc, 'job'), await accountLines(nss), nss, etc)
  t.equal(readFileSync(files.passwd, 'utf8'), `root:x:0:0:root:/root:/bin/sh\n${TEST_USER}:x:1:1::/h:/bin/sh\ncbatchnss:x:2001:2001:NSS-only test user:/home/cbatchnss:/bin/sh\n`)
  t.equal(readFileSync(files.group, 'utf8'), 'root:x:0:\ncbatchnss:x:2001:cbatchnss\ncbatchnssextra:x:2002:cbatchnss\n', 'the owner a member of each of their groups')
  const owner = await lookupUser(TEST_USER)
  const again = writeAccountFiles(join(etc, 'job2'), await accountLines(owner), owner, etc)
  t.same(readFileSync(again.passwd, 'utf8').split('\n').filter(l => l.startsWith(`${TEST_USER}:`)), [(await accountLines(owner)).passwd], 'a user the files have too: once, as NSS answers')
})

t.test('whatever the node\'s files say, the owner\'s uid names the owner alone, with the job\'s gid, in exactly their groups', async t => {
  const owner = await lookupUser(TEST_USER)
  const extra = owner.groups.find(g => g !== owner.gid)!
  t.ok(extra, 'the test user has a supplementary group (scripts/provision.sh)')
  const etc = t.testdir({
    // A local account with the owner's uid (and root's group) before theirs; the owner listed in root's group.
    passwd: `root:x:0:0:root:/root:/bin/sh\nalias:x:${owner.uid}:0::/:/bin/sh\n`,
    group: `root:x:0:${TEST_USER},alias\nmine:x:${extra}:someone\n`,
  })
  // The job's group (qsub -W group_list) is their supplementary one.
  const job = { ...owner, gid: extra }
  const files = writeAccountFiles(join(etc, 'job'), await accountLines(job), job, etc)
  const users = readFileSync(files.passwd, 'utf8').split('\n').filter(Boolean).map(l => l.split(':'))
  t.same(users.filter(u => u[2] === String(owner.uid)).map(u => [u[0], u[3]]), [[TEST_USER, String(extra)]], 'one line for the uid: the owner\'s, the job\'s group as primary')
  const groups = readFileSync(files.group, 'utf8').split('\n').filter(Boolean).map(l => l.split(':'))
  const listed = new Set(groups.filter(g => g[3].split(',').includes(TEST_USER)).map(g => Number(g[2])))
  t.same([...listed].sort(), [...new Set(owner.groups)].sort(), 'listed in their groups, and in no other')
  t.same(groups.find(g => g[0] === 'root'), ['root', 'x', '0', 'alias'], 'other members stay')
  t.same(groups.find(g => g[0] === 'mine'), ['mine', 'x', String(extra), `someone,${TEST_USER}`], 'other members stay')
})
