// cbatch gc and cbatch ps (test/faults.integration.ts's gc test) against Podman's service:
// the same test, engine chosen before it loads (test/helpers/engine.ts). The file's other
// tests stay with Docker: its engine faults need a private dockerd (about 13 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
process.env.TAP_GREP = '^cbatch gc removes orphans'
await import('./faults.integration.ts')
