// Run with tsx (npm run build). Writes config/cbatch.schema.json from lib/config.ts, then
// bundles each hook and the CLI into one self-contained file: mom_priv needs no node_modules.
//   dist/prologue, dist/jobstarter, dist/epilogue   /bin/sh wrappers pbs_mom runs
//   dist/cbatch.d/<hook>.cjs                         the bundled hooks they start
//   dist/cbatch                                      the CLI (cbatch run)
import { build } from 'esbuild'
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { configJsonSchema } from '../lib/config.ts'

const HOOKS = ['prologue', 'jobstarter', 'epilogue']

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

const common = {
  plugins: [leaveOutUnused, lazyDebugLog],
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
  ...HOOKS.map(hook => build({ ...common, entryPoints: [`hooks/${hook}.ts`], outfile: `dist/cbatch.d/${hook}.cjs` })),
  build({ ...common, entryPoints: ['hooks/load.ts'], outfile: 'dist/cbatch.d/load.cjs' }),
  build({ ...common, entryPoints: ['bin/cbatch.ts'], outfile: 'dist/cbatch', banner: { js: '#!/usr/bin/env node' } }),
])
chmodSync('dist/cbatch', 0o755)
// dist/cbatch has no extension: without this, the package's "type": "module" would apply.
writeFileSync('dist/package.json', '{ "type": "commonjs" }\n')

// pbs_mom runs the hooks as root with variables a job owner may set (qsub -v). The wrapper
// runs in Debian's statically linked busybox, so the dynamic loader never reads LD_PRELOAD
// or its kin; node then starts with an empty environment, so none of them (NODE_OPTIONS…)
// can change how it runs, and reads the real one from fd 3. Node is named by the absolute
// path it was built with.
for (const hook of HOOKS) {
  writeFileSync(`dist/${hook}`, `#!/bin/busybox sh
# cbatch ${hook} hook for pbs_mom (see the cbatch README)
exec /bin/busybox env -i CBATCH_ENV_FD=3 ${process.execPath} "\${0%/*}/cbatch.d/load.cjs" ${hook} "$@" 3<<CBATCH_ENV
$(/bin/busybox base64 -w 0 /proc/self/environ)
CBATCH_ENV
`, { mode: 0o755 })
}
