// The package's version, written into the bundles by the build (scripts/build.mjs) from
// package.json; 'dev' when the library runs from source.
declare const CBATCH_VERSION: string | undefined
export const VERSION = typeof CBATCH_VERSION === 'string' ? CBATCH_VERSION : 'dev'
