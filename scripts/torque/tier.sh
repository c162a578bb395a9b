#!/bin/sh
# Makes this host the real-TORQUE test tier's cluster (test/torque-real/): TORQUE's server
# and two moms (scripts/torque/start.sh --moms 2), a second engine for the second mom (no
# bridge, ever), the tier's image, and cbatch installed on both moms by its own install.sh,
# each with its own config. Needs TORQUE installed (scripts/torque/build.sh) and the project
# built and provisioned (npm test's pretest). Idempotent; run it again to change engines.
#
#   scripts/torque/tier.sh [--engine docker|podman]
#
#   node vm : PBS_HOME /var/spool/torque,       engine /var/run/docker.sock         (podman: /run/cbatch-podman/podman.sock, provision.sh's)
#   node vm2: PBS_HOME /var/spool/torque-mom2,  engine /run/cbatch-tier/docker2.sock (podman: /run/cbatch-tier/podman2.sock)
#   configs /etc/cbatch-tier/vm and /etc/cbatch-tier/vm2; the tests read each node's engine there.
set -eu
cd "$(dirname "$0")/../.."
say() { echo "torque/tier: $*"; }
die() { echo "torque/tier: $*" >&2; exit 1; }
ENGINE=docker
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) [ $# -ge 2 ] || die "--engine: docker or podman"; ENGINE=$2; shift 2 ;;
    *) die "unknown argument $1 (usage: tier.sh [--engine docker|podman])" ;;
  esac
done
case "$ENGINE" in docker|podman) ;; *) die "--engine: docker or podman, not $ENGINE" ;; esac
[ "$(id -u)" = 0 ] || die "must run as root"
command -v pbs_server >/dev/null || [ -x /usr/local/sbin/pbs_server ] || die "no TORQUE here: scripts/torque/build.sh SRC first"
[ -x dist/cbatch ] || die "build cbatch first (npm run build)"

# The second engine comes before the moms: a mom whose cbatch node check (installed by an
# earlier run) finds its engine down reports ERROR, and start.sh would wait in vain for it.
RUN=/run/cbatch-tier
STATE=/var/lib/cbatch-tier
install -d -m 0700 "$RUN" "$STATE"
answers() { docker -H "unix://$1" info >/dev/null 2>&1; }
wait_for() { # SOCKET LOG
  i=0
  until answers "$1"; do
    i=$((i + 1)); [ $i -lt 120 ] || die "the engine on $1 did not start (see $2)"
    sleep 0.5
  done
}
if [ "$ENGINE" = docker ]; then
  SOCK1=/var/run/docker.sock
  SOCK2=$RUN/docker2.sock
  if ! answers "$SOCK2"; then
    say "starting the second mom's dockerd on $SOCK2"
    nohup dockerd --host "unix://$SOCK2" --data-root "$STATE/docker2" --exec-root "$RUN/exec2" --pidfile "$RUN/docker2.pid" \
      --bridge=none --iptables=false --ip-masq=false >"$STATE/dockerd2.log" 2>&1 &
    wait_for "$SOCK2" "$STATE/dockerd2.log"
  fi
else
  SOCK1=/run/cbatch-podman/podman.sock
  SOCK2=$RUN/podman2.sock
  answers "$SOCK1" || die "no Podman service on $SOCK1: run scripts/provision.sh"
  if ! answers "$SOCK2"; then
    say "starting the second mom's Podman service on $SOCK2"
    # The host's settings, but file locks of its own: the shared-memory ones are one set per
    # host, and a second Podman's first start would free the first one's.
    sed -e '/^[[:space:]]*lock_type[[:space:]]*=/d' -e 's/^[[:space:]]*\[engine\][[:space:]]*\(#.*\)\{0,1\}$/[engine]\nlock_type = "file"/' \
      /etc/containers/containers.conf >"$STATE/podman2.conf"
    grep -q '^lock_type = "file"' "$STATE/podman2.conf" || printf '[engine]\nlock_type = "file"\n' >>"$STATE/podman2.conf"
    CONTAINERS_CONF="$STATE/podman2.conf" nohup podman --root "$STATE/podman2" --runroot "$RUN/podman2" --tmpdir "$RUN/podman2-tmp" \
      --volumepath "$STATE/podman2-volumes" system service --time=0 "unix://$SOCK2" >"$STATE/podman2.log" 2>&1 &
    wait_for "$SOCK2" "$STATE/podman2.log"
  fi
fi

scripts/torque/start.sh --moms 2
# Queue pullfail (below) besides start.sh's batch and unmanaged.
qmgr -c 'list queue pullfail' >/dev/null 2>&1 || qmgr -c 'create queue pullfail queue_type = execution'
qmgr -c 'set queue pullfail enabled = true'
qmgr -c 'set queue pullfail started = true'

# The tier's image: busybox, and TORQUE's pbsdsh with the libraries it links, so that jobs
# start TM tasks from inside their containers as on a cluster.
IMAGE=cbatch-test/torque:latest
VERSION=2
if [ "$(docker image inspect -f '{{index .Config.Labels "cbatch.torque-image"}}' "$IMAGE" 2>/dev/null)" != "$VERSION" ]; then
  say "building $IMAGE"
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/home" "$root/usr/local/bin"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  chroot "$root" /bin/busybox --install -s /bin
  for program in /usr/local/bin/pbsdsh; do
    cp "$program" "$root/usr/local/bin/"
    # The loader where the program names it; the libraries where it looks without a cache.
    loader=$(ldd "$program" | awk '/^\t\// {print $1}')
    mkdir -p "$root$(dirname "$loader")" "$root/lib/x86_64-linux-gnu"
    cp -L "$loader" "$root$loader"
    for lib in $(ldd "$program" | awk '/=> \// {print $3}'); do
      cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
    done
  done
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c "LABEL cbatch.torque-image=$VERSION" - "$IMAGE" >/dev/null
  rm -rf "$root"
fi
for sock in $SOCK1 $SOCK2; do
  for image in "$IMAGE" cbatch-test/busybox:latest; do
    [ "$(docker image inspect -f '{{.Id}}' "$image")" = "$(docker -H "unix://$sock" image inspect -f '{{.Id}}' "$image" 2>/dev/null)" ] \
      || docker save "$image" | docker -H "unix://$sock" load >/dev/null
  done
done

# Each mom's config: queue batch in the tier's image on the host network (TM reaches the
# mom), queue pullfail whose image the mother superior (vm) cannot pull, so its prologue
# fails and requeues while the sister (vm2) has it. Queue unmanaged is not cbatch's.
install -d -m 0755 /var/log/cbatch-tier /etc/cbatch-tier
config() { # NODE SOCKET PULLFAIL_IMAGE PULLFAIL_POLICY
  install -d -m 0755 "/etc/cbatch-tier/$1"
  cat >"/etc/cbatch-tier/$1/cbatch.yaml" <<YAML
# The real-TORQUE test tier's config for node $1 (scripts/torque/tier.sh)
engine: { kind: $ENGINE, socket: $2, requeuePause: 1 }
log: { file: /var/log/cbatch-tier/$1.log }
accounting: { file: /var/log/cbatch-tier/$1-accounting.jsonl }
images: { pullAttempts: 1 }
queues:
  batch:
    image: $IMAGE
    pull: never
    network: host
    allowedImages: ['cbatch-test/**']
  pullfail:
    image: $3
    pull: $4
    network: host
YAML
  chmod 0644 "/etc/cbatch-tier/$1/cbatch.yaml"
}
config vm "$SOCK1" 127.0.0.1:5999/cbatch-tier/unreachable:1 always
config vm2 "$SOCK2" "$IMAGE" never
./dist/cbatch config check /etc/cbatch-tier/vm/cbatch.yaml >/dev/null || die "the tier's config for vm is invalid"

./install.sh --no-build --node-check --pbs-home /var/spool/torque --config-dir /etc/cbatch-tier/vm
./install.sh --no-build --node-check --pbs-home /var/spool/torque-mom2 --config-dir /etc/cbatch-tier/vm2 --bin-dir /usr/local/lib/cbatch-tier/vm2
# Status (and so the node check) every 10 s rather than 45: the tier waits on it.
for home in /var/spool/torque /var/spool/torque-mom2; do
  grep -q '^\$status_update_time' "$home/mom_priv/config" || echo '$status_update_time 10' >>"$home/mom_priv/config"
done
# pbs_mom reads mom_priv/config again on HUP.
for pid in $(pgrep -x pbs_mom); do kill -HUP "$pid"; done
say "ready: cbatch on vm and vm2, engine $ENGINE"
