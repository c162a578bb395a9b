#!/bin/sh
# Stops the TORQUE cluster that scripts/torque/start.sh started: both pbs_moms (vm and vm2),
# pbs_sched, pbs_server and trqauthd, each the clean way first (momctl -s, qterm, trqauthd -d),
# then by the pid in its lock file; waits until none of them is left. Jobs are left queued in
# the server database (qterm -t quick), so the next start.sh finds them. Idempotent.
#
#   scripts/torque/stop.sh
set -eu

SBIN=/usr/local/sbin
BIN=/usr/local/bin
HOME1=/var/spool/torque
HOME2=/var/spool/torque-mom2
PATH=$SBIN:$BIN:$PATH
export PATH
say() { echo "torque/stop: $*"; }
die() { echo "torque/stop: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# A pid from a TORQUE lock file, if that process is alive and is NAME.
lock_pid() { # FILE NAME
  [ -f "$1" ] || return 1
  p=$(tr -dc '0-9' <"$1" 2>/dev/null || true)
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
}
gone() { # PID: waits up to 20s for it to exit, then SIGKILLs it
  n=40
  while kill -0 "$1" 2>/dev/null; do
    n=$((n - 1))
    if [ $n -le 0 ]; then say "pid $1 did not exit: SIGKILL"; kill -9 "$1" 2>/dev/null || true; sleep 0.5; return; fi
    sleep 0.5
  done
}
stop() { # NAME LOCKFILE CLEAN-COMMAND...
  name=$1; lock=$2; shift 2
  p=$(lock_pid "$lock" "$name" || true)
  [ -n "$p" ] || return 0
  say "stopping $name (pid $p)"
  "$@" >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
  gone "$p"
}

stop pbs_mom "$HOME2/mom_priv/mom30002.lock" momctl -s -h vm2 -p 30003
stop pbs_mom "$HOME1/mom_priv/mom.lock" momctl -s -h vm -p 15003
stop pbs_sched "$HOME1/sched_priv/sched.lock" kill "$(lock_pid "$HOME1/sched_priv/sched.lock" pbs_sched || echo 0)"
stop pbs_server "$HOME1/server_priv/server.lock" qterm -t quick
# A server started with -t create has no lock file (it empties server_priv): by its exact name.
for p in $(pgrep -x pbs_server || true); do
  say "stopping pbs_server (pid $p, no lock file)"
  qterm -t quick >/dev/null 2>&1 || kill "$p" 2>/dev/null || true
  gone "$p"
done

# trqauthd keeps no lock file: ask it to go, then end what is left by its exact name's pid.
if pgrep -x trqauthd >/dev/null; then
  say "stopping trqauthd"
  trqauthd -d >/dev/null 2>&1 || true
  for p in $(pgrep -x trqauthd || true); do kill "$p" 2>/dev/null || true; gone "$p"; done
fi

left=""
for name in pbs_mom pbs_server pbs_sched trqauthd; do
  for p in $(pgrep -x $name || true); do left="$left $name($p)"; done
done
[ -z "$left" ] || die "still running:$left"
say "stopped"
