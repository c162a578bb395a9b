#!/bin/sh
# Makes this Debian machine ready to run cbatch jobs and its test suite, as root:
# a Docker engine (no bridge network, ever), a registry on loopback, the test image,
# and the non-root users jobs run as. Idempotent; each step is skipped when already done.
set -eu

REGISTRY=127.0.0.1:5000
IMAGE=cbatch-test/busybox:latest
STATE=/var/lib/cbatch-test
say() { echo "provision: $*"; }

[ "$(id -u)" = 0 ] || { echo "provision: must run as root" >&2; exit 1; }

missing=""
for pair in dockerd:docker.io docker-registry:docker-registry setpriv:util-linux getent:libc-bin runsc:runsc; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
# A user known only to NSS (as LDAP/SSSD users are): libnss-extrausers serves it.
dpkg -s libnss-extrausers >/dev/null 2>&1 || missing="$missing libnss-extrausers"
# The hooks' wrappers need the statically linked busybox (see scripts/build.mjs).
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing="$missing busybox-static"
if [ -n "$missing" ]; then
  say "installing$missing"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
fi

mkdir -p "$STATE"
# gVisor's runsc as the engine's runtime `runsc` (queues with `runtime: runsc`). Only
# `runtimes` goes into daemon.json: dockerd's other settings are its flags. --network=none:
# the sandbox has its own loopback and nothing else, whatever the container's network (no
# bridge, ever); runsc's default (`sandbox`) would copy the container's network namespace
# into gVisor's stack, which this 2022 runsc refuses on kernels that show
# /proc/sys/net/core/rmem_default in every namespace (gVisor issue 10704). crun is not
# registered: it fails here with "cgroups in hybrid mode not supported".
RUNSC='{"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none"]}'
mkdir -p /etc/docker
/usr/bin/python3 - "$RUNSC" <<'PY'
import json, os, sys
path = '/etc/docker/daemon.json'
conf = json.load(open(path)) if os.path.exists(path) else {}
runsc = json.loads(sys.argv[1])
if conf.get('runtimes', {}).get('runsc') != runsc:
    conf.setdefault('runtimes', {})['runsc'] = runsc
    with open(path + '.new', 'w') as f:
        json.dump(conf, f, indent=2)
    os.replace(path + '.new', path)
PY
# A running dockerd reads its runtimes again on SIGHUP: its jobs go on.
if docker info >/dev/null 2>&1 && ! docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
  say "registering runsc with the running dockerd (SIGHUP)"
  kill -HUP "$(cat /var/run/docker.pid)"
  i=0
  until docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; do
    i=$((i + 1)); [ $i -lt 20 ] || { echo "provision: dockerd did not take runsc, see $STATE/dockerd.log" >&2; exit 1; }
    sleep 0.25
  done
fi
if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (no bridge, no iptables)"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$STATE/dockerd.log" 2>&1 &
  i=0
  until docker info >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 60 ] || { echo "provision: dockerd did not start, see $STATE/dockerd.log" >&2; exit 1; }
    sleep 0.5
  done
fi

# The test image: busybox, plus a setuid-root copy that the security tests try to abuse.
IMAGE_VERSION=3
if [ "$(docker image inspect -f '{{index .Config.Labels "cbatch.test-image"}}' "$IMAGE" 2>/dev/null)" != "$IMAGE_VERSION" ]; then
  say "building $IMAGE from busybox-static"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/home" "$root/usr/local/bin"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  cp /bin/busybox "$root/usr/local/bin/busybox-suid"
  chmod 4755 "$root/usr/local/bin/busybox-suid"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    -c "LABEL cbatch.test-image=$IMAGE_VERSION" - "$IMAGE" >/dev/null
  rm -rf "$root"
fi

# An image with an ENTRYPOINT that wraps what it runs (the queues' `entrypoint` setting),
# and an environment of its own (their `environment` policy).
ENTRY_IMAGE=cbatch-test/entrypoint:latest
ENTRY_VERSION=2
if [ "$(docker image inspect -f '{{index .Config.Labels "cbatch.entry-image"}}' "$ENTRY_IMAGE" 2>/dev/null)" != "$ENTRY_VERSION" ]; then
  say "building $ENTRY_IMAGE"
  entry=$(mktemp)
  printf '#!/bin/sh\nexport ENTERED=yes\nexec "$@"\n' >"$entry"
  chmod 0755 "$entry"
  docker rm -f cbatch-entry-build >/dev/null 2>&1 || true
  docker create --name cbatch-entry-build --network none "$IMAGE" true >/dev/null
  docker cp "$entry" cbatch-entry-build:/usr/local/bin/entry
  docker commit -c 'ENTRYPOINT ["/usr/local/bin/entry"]' -c 'ENV PATH=/image/bin:/usr/local/bin:/usr/bin:/bin LD_LIBRARY_PATH=/image/lib' \
    -c "LABEL cbatch.entry-image=$ENTRY_VERSION" cbatch-entry-build "$ENTRY_IMAGE" >/dev/null
  docker rm cbatch-entry-build >/dev/null
  rm -f "$entry"
fi

if ! busybox wget -q -O /dev/null "http://$REGISTRY/v2/" 2>/dev/null; then
  say "starting a registry on $REGISTRY"
  cat >"$STATE/registry.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
CONF
  nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
  i=0
  until busybox wget -q -O /dev/null "http://$REGISTRY/v2/" 2>/dev/null; do
    i=$((i + 1)); [ $i -lt 40 ] || { echo "provision: registry did not start, see $STATE/registry.log" >&2; exit 1; }
    sleep 0.25
  done
fi
docker tag "$IMAGE" "$REGISTRY/$IMAGE"
docker push -q "$REGISTRY/$IMAGE" >/dev/null

# An image only the registry has (2 MiB of its own data): pulls of it take real transfer.
BIG=cbatch-test/big:1
if ! busybox wget -q -O /dev/null "http://$REGISTRY/v2/cbatch-test/big/manifests/1" 2>/dev/null; then
  say "pushing $REGISTRY/$BIG"
  data=$(mktemp)
  head -c 2097152 /dev/urandom >"$data"
  docker rm -f cbatch-big-build >/dev/null 2>&1 || true
  docker create --name cbatch-big-build --network none "$IMAGE" true >/dev/null
  docker cp "$data" cbatch-big-build:/big.dat
  docker commit cbatch-big-build "$REGISTRY/$BIG" >/dev/null
  docker rm cbatch-big-build >/dev/null
  docker push -q "$REGISTRY/$BIG" >/dev/null
  docker rmi "$REGISTRY/$BIG" >/dev/null
  rm -f "$data"
fi

# A private registry: htpasswd (bcrypt) auth, user cbatch, password in $STATE/private.pw.
PRIVATE=127.0.0.1:5001
if ! busybox wget -S -O /dev/null "http://$PRIVATE/v2/" 2>&1 | grep -q 401; then
  say "starting a private registry (basic auth) on $PRIVATE"
  [ -s "$STATE/private.pw" ] || head -c 12 /dev/urandom | base64 | tr -d '/+=' >"$STATE/private.pw"
  chmod 600 "$STATE/private.pw"
  hash=$(/usr/bin/python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$(cat "$STATE/private.pw")")
  echo "cbatch:$hash" >"$STATE/private.htpasswd"
  cat >"$STATE/private.yml" <<CONF
version: 0.1
storage:
  filesystem:
    rootdirectory: $STATE/private-registry
http:
  addr: $PRIVATE
auth:
  htpasswd:
    realm: cbatch-test
    path: $STATE/private.htpasswd
CONF
  nohup docker-registry serve "$STATE/private.yml" >"$STATE/private.log" 2>&1 &
  i=0
  until busybox wget -S -O /dev/null "http://$PRIVATE/v2/" 2>&1 | grep -q 401; do
    i=$((i + 1)); [ $i -lt 40 ] || { echo "provision: private registry did not start, see $STATE/private.log" >&2; exit 1; }
    sleep 0.25
  done
fi
# Pushed with a client config of its own, so root's ~/.docker keeps no password.
pushconf=$(mktemp -d)
docker --config "$pushconf" login -u cbatch --password-stdin "$PRIVATE" <"$STATE/private.pw" >/dev/null 2>&1
docker tag "$IMAGE" "$PRIVATE/$IMAGE"
docker --config "$pushconf" push -q "$PRIVATE/$IMAGE" >/dev/null
rm -rf "$pushconf"

# Jobs run as real non-root users; cbatchtest has a supplementary group to check.
getent group cbatchextra >/dev/null || groupadd cbatchextra
for user in cbatchtest cbatchdemo; do
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
done
id -nG cbatchtest | grep -qw cbatchextra || usermod -aG cbatchextra cbatchtest
# cbatchnss: in no file of /etc, only in extrausers' own database, with a group of its own
# and a supplementary one.
mkdir -p /var/lib/extrausers
grep -q '^cbatchnss:' /var/lib/extrausers/passwd 2>/dev/null || {
  echo 'cbatchnss:x:2001:2001:NSS-only test user:/home/cbatchnss:/bin/sh' >>/var/lib/extrausers/passwd
  printf '%s\n' 'cbatchnss:x:2001:' 'cbatchnssextra:x:2002:cbatchnss' >>/var/lib/extrausers/group
  echo 'cbatchnss:*:19000:0:99999:7:::' >>/var/lib/extrausers/shadow
}
sed -i -E '/^(passwd|group):/{/extrausers/!s/$/ extrausers/}' /etc/nsswitch.conf
install -d -o 2001 -g 2001 -m 0755 /home/cbatchnss
# A fresh Debian 12 root (minbase: coreutils, util-linux, findutils; busybox-static; no
# Node, no npm, no python): test/release.integration.ts installs the release tarball into a
# copy of it, offline, as on a new compute node. Made once (a minute or two), the only step
# that needs the Debian mirror.
NODE_ROOT=/var/cache/cbatch-test/debian12
if [ ! -x "$NODE_ROOT/bin/busybox" ]; then
  command -v debootstrap >/dev/null 2>&1 || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null; }
  say "making a Debian 12 root for the release test in $NODE_ROOT (debootstrap)"
  rm -rf "$NODE_ROOT.tmp"
  mkdir -p "${NODE_ROOT%/*}"
  debootstrap --variant=minbase --include=busybox-static bookworm "$NODE_ROOT.tmp" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
    || { echo "provision: debootstrap failed, see $STATE/debootstrap.log" >&2; exit 1; }
  rm -f "$NODE_ROOT.tmp"/var/cache/apt/archives/*.deb
  rm -rf "$NODE_ROOT"
  mv "$NODE_ROOT.tmp" "$NODE_ROOT"
fi
# Podman's Docker-compatible service, rootful, on a socket of its own: the integration
# tests run against it too (CBATCH_TEST_ENGINE=podman, npm run test:podman). runc, not crun
# (crun: "cgroups in hybrid mode not supported" here); cgroupfs and file events (no systemd
# here). No network is ever made: containers default to none (cbatch asks for none or
# host), so netavark never sets up its bridge or firewall rules.
PODMAN_SOCKET=/run/cbatch-podman/podman.sock
# Podman's runtimes take no arguments of their own: runsc with --network=none (as Docker's,
# above) is this wrapper, registered as `runsc`.
RUNSC_WRAPPER=/usr/local/libexec/runsc-network-none
wrapper=$(mktemp)
printf '%s\n' '#!/bin/sh' '# gVisor with no network but its own loopback (cbatch tests, Podman).' 'exec /usr/bin/runsc --network=none "$@"' >"$wrapper"
cmp -s "$wrapper" "$RUNSC_WRAPPER" || install -D -m 0755 "$wrapper" "$RUNSC_WRAPPER"
rm -f "$wrapper"
command -v podman >/dev/null 2>&1 && [ -x /usr/libexec/podman/catatonit ] || {
  say "installing podman"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman catatonit >/dev/null
}
conf=$(mktemp)
cat >"$conf" <<'CONF'
# Written by cbatch's scripts/provision.sh: rootful Podman for job containers.
[containers]
netns = "none"
log_driver = "k8s-file"

[network]
network_backend = "netavark"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
runsc = ["/usr/local/libexec/runsc-network-none"]
CONF
cmp -s "$conf" /etc/containers/containers.conf || { install -m 0644 "$conf" /etc/containers/containers.conf; podman_changed=1; }
printf '%s\n' '# cbatch tests: the local registries speak plain http on loopback.' \
  '[[registry]]' 'location = "127.0.0.1:5000"' 'insecure = true' '[[registry]]' 'location = "127.0.0.1:5001"' 'insecure = true' >"$conf"
cmp -s "$conf" /etc/containers/registries.conf.d/50-cbatch-test.conf || { install -m 0644 "$conf" /etc/containers/registries.conf.d/50-cbatch-test.conf; podman_changed=1; }
rm -f "$conf"
podman_answers() { docker -H "unix://$PODMAN_SOCKET" version >/dev/null 2>&1; }
if [ "${podman_changed:-}" ] && [ -s "$STATE/podman.pid" ] && grep -q 'podman' "/proc/$(cat "$STATE/podman.pid")/cmdline" 2>/dev/null; then
  say "restarting the podman service (its configuration changed)"
  kill "$(cat "$STATE/podman.pid")"
  sleep 1
fi
if ! podman_answers; then
  say "starting podman system service on $PODMAN_SOCKET"
  install -d -m 0700 "${PODMAN_SOCKET%/*}"
  nohup podman system service --time=0 "unix://$PODMAN_SOCKET" >"$STATE/podman.log" 2>&1 &
  echo $! >"$STATE/podman.pid"
  i=0
  until podman_answers; do
    i=$((i + 1)); [ $i -lt 60 ] || { echo "provision: the podman service did not start, see $STATE/podman.log" >&2; exit 1; }
    sleep 0.5
  done
fi
# The test images, copied from dockerd's store (the same image ids), when missing or older.
for pair in "$IMAGE:cbatch.test-image:$IMAGE_VERSION" "$ENTRY_IMAGE:cbatch.entry-image:$ENTRY_VERSION"; do
  image=${pair%%:cbatch.*}; rest=${pair#"$image":}; label=${rest%%:*}; version=${rest#*:}
  if [ "$(podman image inspect -f "{{index .Config.Labels \"$label\"}}" "$image" 2>/dev/null)" != "$version" ]; then
    say "loading $image into podman"
    docker save "$image" | podman load -q >/dev/null
  fi
done

say "ready: engine (runtimes runc, runsc), podman service $PODMAN_SOCKET, registry $REGISTRY, image $IMAGE, users cbatchtest, cbatchdemo and cbatchnss (NSS only), Debian 12 root $NODE_ROOT"
