// npm run release: builds once and packs what a compute node needs into one tarball,
// release/cbatch-<version>.tar.gz, to install on every node offline (docs/admin.md):
//   cbatch-<version>/install.sh        installs it (no npm, no network: it finds RELEASE)
//   cbatch-<version>/RELEASE           what was built: the version and its commit, e.g. 0.1.0 (18da705)
//   cbatch-<version>/dist/             the hook wrappers, the bundles, the CLI (no node_modules)
//   cbatch-<version>/config/           the example cbatch.yaml and its JSON Schema
//   cbatch-<version>/README.md, docs/  the docs an admin installs from
import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const { version } = JSON.parse(readFileSync('package.json', 'utf8'))
execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })

const name = `cbatch-${version}`
const stage = mkdtempSync(join(tmpdir(), 'cbatch-release-'))
const top = join(stage, name)
mkdirSync(top)
// What the hooks write beside their bundles when run from dist/ (code caches, validated
// configs) belongs to one machine: a fresh build has none, and none is packed.
const oneMachine = /\.cache$|^config-[0-9a-f]{16}\.json$/
cpSync('dist', join(top, 'dist'), { recursive: true, filter: src => !oneMachine.test(src.split('/').pop()) })
for (const file of ['install.sh', 'README.md', 'config/cbatch.yaml', 'config/cbatch.schema.json']) cpSync(file, join(top, file))
cpSync('docs', join(top, 'docs'), { recursive: true })
// Outside a git checkout (a source tarball) there is no commit to name, nor a date from one.
const git = (...args) => {
  try {
    return execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return ''
  }
}
const build = `${version} (${git('describe', '--always', '--dirty') || 'no git commit'})`
writeFileSync(join(top, 'RELEASE'), `${build}\n`)

// One tarball under release/: the one just built. Its entries are root's (unpacked by root on a
// node, so are the files) and dated by the last commit.
rmSync('release', { recursive: true, force: true })
mkdirSync('release')
const mtime = git('log', '-1', '--format=@%ct') || '@0'
const tarball = join('release', `${name}.tar.gz`)
execFileSync('tar', ['-C', stage, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', `--mtime=${mtime}`, '-czf', tarball, name])
rmSync(stage, { recursive: true, force: true })
const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean).length
process.stdout.write(`${tarball}: cbatch ${build}, ${files} entries\n`)
