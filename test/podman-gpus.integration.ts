// test/gpus.integration.ts against Podman's service: the device nodes, and the vendor's route
// through the Container Device Interface, which Podman resolves (Docker's needs the NVIDIA
// runtime); engine chosen before the tests load (about 10 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./gpus.integration.ts')
