// Run with tsx (npm run build). Writes config/cbatch.schema.json from lib/policy/config.ts, then
// bundles each hook and the CLI into one self-contained file: mom_priv needs no node_modules.
//   dist/<hook>               busybox sh wrappers pbs_mom runs, one per hook of lib/torque/hooks.ts
//   dist/hooks.txt            each wrapper and the file name pbs_mom runs it by in mom_priv (install.sh reads it)
//   dist/cbatch.d/<bundle>.cjs                       the bundled hooks they start, and their loader
//   dist/cbatch                                      the CLI (cbatch run)
import { build } from 'esbuild'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { DEFAULT_CONFIG_PATH } from '../lib/policy/config.ts'
import { configJsonSchema } from '../lib/policy/schema.ts'
import { writeWrappers } from '../hooks/wrapper.ts'
import { BUNDLES, WRAPPED_HOOKS } from '../lib/torque/hooks.ts'

// dockerode loads, at start-up, what only image builds (BuildKit sessions over gRPC) and
// ssh:// engines need. cbatch uses neither: leaving them out of the bundle halves the
// hooks' start-up. Any use of them fails loudly instead of silently.
const UNUSED = ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'ssh2', 'tar-fs', '@balena/dockerignore', 'uuid']
const leaveOutUnused = {
  name: 'leave-out-unused',
  setup(b) {
    const filter = new RegExp(`^(${UNUSED.map(m => m.replace(/[/.]/g, '\\$&')).join('|')})$`)
    b.onResolve({ filter }, args => ({ path: args.path, namespace: 'unused' }))
    b.onLoad({ filter: /.*/, namespace: 'unused' }, args => ({
      contents: `const fail = () => { throw new Error(${JSON.stringify(`${args.path} is not part of the cbatch bundle`)}) }
module.exports = new Proxy(fail, { get: () => fail })`,
    }))
  },
}

// docker-modem formats every request for its debug log (util.inspect of the whole request,
// hidden fields included) even while that log is off: the largest share of a hook's CPU
// after start-up. Formatted only when the log is on; the build fails if the line changes.
const SENDING = "debug('Sending: %s', util.inspect("
const lazyDebugLog = {
  name: 'lazy-debug-log',
  setup(b) {
    b.onLoad({ filter: /[\\/]docker-modem[\\/]lib[\\/]modem\.js$/ }, args => {
      const source = readFileSync(args.path, 'utf8')
      if (!source.includes(SENDING)) throw new Error(`${args.path} changed: review lazyDebugLog in scripts/build.mjs`)
      return { contents: source.replace(SENDING, `debug.enabled && ${SENDING}`), loader: 'js' }
    })
  },
}

const { version } = JSON.parse(readFileSync('package.json', 'utf8'))
const common = {
  plugins: [leaveOutUnused, lazyDebugLog],
  // The version containers are labelled with, and the build's identity (lib/version.ts).
  define: { CBATCH_VERSION: JSON.stringify(version), CBATCH_BUILD: JSON.stringify(`${version}+${randomBytes(8).toString('hex')}`) },
  // readable-stream 3 is a copy of Node's own streams, for old Nodes; Node's are the same
  // API and cost nothing to load.
  alias: { 'readable-stream': 'node:stream' },
  bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true,
  legalComments: 'none', logLevel: 'warning', keepNames: true,
}

writeFileSync('config/cbatch.schema.json', `${JSON.stringify(configJsonSchema(), null, 2)}\n`)
rmSync('dist', { recursive: true, force: true })
mkdirSync('dist/cbatch.d', { recursive: true })
await Promise.all([
  ...BUNDLES.map(bundle => build({ ...common, entryPoints: [`hooks/${bundle}.ts`], outfile: `dist/cbatch.d/${bundle}.cjs` })),
  build({ ...common, entryPoints: ['bin/cbatch.ts'], outfile: 'dist/cbatch', banner: { js: '#!/usr/bin/env node' } }),
])
chmodSync('dist/cbatch', 0o755)
// dist/cbatch has no extension: without this, the package's "type": "module" would apply.
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n')

// The wrappers pbs_mom runs (hooks/wrapper.ts), for the default config path; install.sh
// writes the path a site chose. Node is named by the absolute path it was built with.
writeWrappers('dist', { node: process.execPath, config: DEFAULT_CONFIG_PATH })
// For install.sh: each wrapper in dist/ and the file pbs_mom runs it as in mom_priv (lib/torque/hooks.ts).
writeFileSync('dist/hooks.txt', WRAPPED_HOOKS.map(h => `${h.name} ${h.momPrivFile}\n`).join(''))
