// test/faults.integration.ts against Podman's service (scripts/provision.sh starts it): the
// same tests, engine chosen before they load (test/helpers/engine.ts). Its engine fault
// stops a private Podman service of its own stores (emulator/engines.ts) under a running
// job: the container outlives the service, as it does not outlive a dockerd (about 80 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./faults.integration.ts')
