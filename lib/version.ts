// The package's version and this build's identity, written into the bundles by the build
// (scripts/build.mjs); 'dev' when the library runs from source.
declare const CBATCH_VERSION: string | undefined
declare const CBATCH_BUILD: string | undefined
export const VERSION = typeof CBATCH_VERSION === 'string' ? CBATCH_VERSION : 'dev'
/** Unique per build: what a build derived (the validated config) is never used by another. */
export const BUILD = typeof CBATCH_BUILD === 'string' ? CBATCH_BUILD : 'dev'
