// test/security.integration.ts against Podman's Docker-compatible service (scripts/provision.sh
// starts it): the same tests, engine chosen before they load (test/helpers/engine.ts).
process.env.CBATCH_TEST_ENGINE = 'podman'
// In npm test, the two races on host paths (about half the file's time) are left out here:
// they run against Docker there. npm run test:podman (CBATCH_PODMAN_FULL=1) runs them too.
if (!process.env.CBATCH_PODMAN_FULL) {
  process.env.TAP_GREP = '^(host paths are judged by what they really are|a path swapped while the hooks run)'
  process.env.TAP_INVERT = '1'
}
await import('./security.integration.ts')
