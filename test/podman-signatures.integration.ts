// test/signatures.integration.ts against Podman's service (scripts/provision.sh starts it, and
// marks the loopback registries plain http in registries.conf): signed images only, the
// verified digest run, the node's tag flipped in Podman's own store while jobs start.
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./signatures.integration.ts')
