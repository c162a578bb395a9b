import t from 'tap'
import { exposedBy } from '../lib/policy/security.ts'

t.test('no runtime\'s socket or state reaches a job, whichever runtime the node uses', async t => {
  for (const [source, exposed] of [
    ['/var/run/docker.sock', '/var/run/docker.sock'], ['/var/lib/docker/volumes/x', '/var/lib/docker'], ['/run/containerd', '/run/containerd'],
    ['/run/podman/podman.sock', '/run/podman'], ['/var/run/podman', '/var/run/podman'], ['/var/lib/containers/storage', '/var/lib/containers'],
    ['/run/containers/0/auth.json', '/run/containers'], ['/run/crio/crio.sock', '/run/crio'],
  ]) t.equal(exposedBy(source), exposed, source)
  t.equal(exposedBy('/run'), '/run/docker.sock', 'nor what holds them')
  t.equal(exposedBy('/var/lib'), '/var/lib/docker')
  t.equal(exposedBy('/home/alice'), undefined)
  t.equal(exposedBy('/var/lib/containers-of-alice'), undefined, 'a name that only starts alike is not below')
  t.equal(exposedBy('/srv/torque/mom_priv', '/srv/torque'), '/srv/torque', 'this mom\'s PBS_HOME, wherever it is')
  t.equal(exposedBy('/run/cbatch-podman', undefined, '/run/cbatch-podman/podman.sock'), '/run/cbatch-podman/podman.sock', 'the configured engine socket, wherever it is')
  t.equal(exposedBy('/run/libpod'), '/run/libpod', 'Podman\'s runtime state (exec and attach sockets)')
})
