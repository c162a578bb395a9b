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
for pair in dockerd:docker.io docker-registry:docker-registry setpriv:util-linux getent:libc-bin; do
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
say "ready: engine, registry $REGISTRY, image $IMAGE, users cbatchtest, cbatchdemo and cbatchnss (NSS only)"
