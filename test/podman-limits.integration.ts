// test/limits.integration.ts against Podman's Docker-compatible service (scripts/provision.sh
// starts it): the same tests, engine chosen before they load (test/helpers/engine.ts).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./limits.integration.ts')
