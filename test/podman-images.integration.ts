// test/images.integration.ts against Podman's service (scripts/provision.sh starts it): the
// same tests, engine chosen before they load (test/helpers/engine.ts). Its two tests through
// relays on 127.0.0.1:5009/5010 skip themselves: Podman pulls over plain http only from
// registries its registries.conf marks insecure (about 36 s here).
process.env.CBATCH_TEST_ENGINE = 'podman'
await import('./images.integration.ts')
