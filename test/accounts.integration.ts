import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { accountLines, writeAccountFiles } from '../lib/host/accounts.ts'
import { lookupUser } from '../lib/host/identity.ts'
import { NSS_USER, TEST_USER } from './helpers/jobs.ts'

t.test('the node\'s accounts, with the owner and their groups added as NSS knows them', async t => {
  const etc = t.testdir({ passwd: `root:x:0:0:root:/root:/bin/sh\n${TEST_USER}:x:1:1::/h:/bin/sh\n`, group: 'root:x:0:\n' })
  const files = writeAccountFiles(join(etc, 'job'), await accountLines(await lookupUser(NSS_USER)), etc)
  t.equal(readFileSync(files.passwd, 'utf8'), `root:x:0:0:root:/root:/bin/sh\n${TEST_USER}:x:1:1::/h:/bin/sh\ncbatchnss:x:2001:2001:NSS-only test user:/home/cbatchnss:/bin/sh\n`)
  t.equal(readFileSync(files.group, 'utf8'), 'root:x:0:\ncbatchnss:x:2001:\ncbatchnssextra:x:2002:cbatchnss\n')
  const again = writeAccountFiles(join(etc, 'job2'), await accountLines(await lookupUser(TEST_USER)), etc)
  t.equal(readFileSync(again.passwd, 'utf8').split('\n').filter(l => l.startsWith(`${TEST_USER}:`)).length, 1, 'a user the files have is not added twice')
})
