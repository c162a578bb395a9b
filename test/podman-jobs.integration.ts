// test/jobs.integration.ts against Podman's service (scripts/provision.sh starts it): the
// same tests, engine chosen before they load (test/helpers/engine.ts). Among them the job's
// owner with all their groups, which Podman's exec finds in the container's account files
// (about 45 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./jobs.integration.ts')
