// test/multinode.integration.ts against Podman: the mother superior's engine is the main
// Podman service, and each sister node's a private Podman service with its own stores and
// locks (emulator/engines.ts); the same tests, engine chosen before they load (about 55 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./multinode.integration.ts')
