#!/bin/sh
# Sets up and starts a real TORQUE 6.1 cluster on this host, all on loopback, for cbatch's
# real-TORQUE test tier (TORQUE installed by scripts/torque/build.sh):
#   trqauthd, pbs_server (server "vm"), pbs_sched, queues `batch` (default) and `unmanaged`,
#   node vm  = pbs_mom, PBS_HOME /var/spool/torque,      ports 15002/15003 (TORQUE's defaults)
#   node vm2 = pbs_mom, PBS_HOME /var/spool/torque-mom2, ports 30002/30003 (with --moms 2),
#              started in TORQUE's multi-mom mode: pbs_mom -m -M 30002 -R 30003 -A vm2 -d ...
# Each node has np=2. Idempotent: what already runs is left running, and the configuration
# (queues, nodes, mom_priv/config lines) converges to the above; with --moms 1 a running vm2 is
# stopped and removed. Lines of mom_priv/config that are not TORQUE's own (cbatch's hooks) are
# kept, and this script never installs a prologue, epilogue or job starter.
#
#   scripts/torque/start.sh [--moms 1|2]
set -eu

MOMS=1
while [ $# -gt 0 ]; do
  case $1 in
    --moms) [ $# -ge 2 ] || { echo "torque/start: --moms needs 1 or 2" >&2; exit 2; }; MOMS=$2; shift ;;
    --moms=*) MOMS=${1#--moms=} ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "torque/start: unknown argument $1 (usage: $0 [--moms 1|2])" >&2; exit 2 ;;
  esac
  shift
done
case $MOMS in 1|2) ;; *) echo "torque/start: --moms must be 1 or 2" >&2; exit 2 ;; esac

SBIN=/usr/local/sbin
BIN=/usr/local/bin
HOME1=/var/spool/torque
HOME2=/var/spool/torque-mom2
SERVER=vm
NODE2=vm2
MOM2_PORT=30002
MOM2_RM_PORT=30003
NP=2
PATH=$SBIN:$BIN:$PATH
export PATH
die() { echo "torque/start: $*" >&2; exit 1; }
say() { echo "torque/start: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root"
for b in "$SBIN/pbs_server" "$SBIN/pbs_mom" "$SBIN/pbs_sched" "$SBIN/trqauthd" "$BIN/qmgr" "$BIN/pbsnodes"; do
  [ -x "$b" ] || die "$b is missing: build and install TORQUE first (scripts/torque/build.sh)"
done

# A pid from a TORQUE lock file, if that process is alive and is NAME.
lock_pid() { # FILE NAME
  [ -f "$1" ] || return 1
  p=$(tr -dc '0-9' <"$1" 2>/dev/null || true)
  [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ] && echo "$p"
}
wait_for() { # SECONDS DESCRIPTION COMMAND...
  tries=$(( $1 * 2 )); shift 2
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1)); [ $tries -gt 0 ] || return 1
    sleep 0.5
  done
}

# --- names: everything is on loopback ------------------------------------------------
loopback() { getent ahostsv4 "$1" 2>/dev/null | awk 'NR==1 {print $1}'; }
a=$(loopback $SERVER)
[ -n "$a" ] || { say "adding '127.0.0.1 $SERVER' to /etc/hosts"; echo "127.0.0.1 $SERVER" >>/etc/hosts; a=127.0.0.1; }
case $a in 127.*) ;; *) die "$SERVER resolves to $a, not to a loopback address: fix /etc/hosts" ;; esac
if [ "$MOMS" = 2 ]; then
  a=$(loopback $NODE2)
  [ -n "$a" ] || { say "adding '127.0.0.1 $NODE2' to /etc/hosts"; echo "127.0.0.1 $NODE2" >>/etc/hosts; a=127.0.0.1; }
  case $a in 127.*) ;; *) die "$NODE2 resolves to $a, not to a loopback address: fix /etc/hosts" ;; esac
fi

# --- files ---------------------------------------------------------------------------
[ -d "$HOME1/mom_priv" ] && [ -d "$HOME1/server_priv" ] || die "$HOME1 is incomplete: run scripts/torque/build.sh"
echo $SERVER >"$HOME1/server_name"
[ -f "$HOME1/pbs_environment" ] || printf 'PATH=/bin:/usr/bin\nLANG=C\n' >"$HOME1/pbs_environment"

# Adds `$KEY VALUE` to a mom_priv/config unless it is there, keeping every other line
# (cbatch's among them).
set_mom_line() { # CONFIG KEY VALUE
  touch "$1"
  grep -qxF "$2 $3" "$1" || printf '%s %s\n' "$2" "$3" >>"$1"
}
# $usecp: output files go back with cp (there is no rcp/scp here); every host is this host.
mom_config() { # PBS_HOME
  set_mom_line "$1/mom_priv/config" '$pbsserver' $SERVER
  set_mom_line "$1/mom_priv/config" '$usecp' '*:/ /'
}
mom_config "$HOME1"

# The second mom's own PBS_HOME, laid out (and permissioned) as make install lays out the first.
if [ "$MOMS" = 2 ]; then
  install -d -m 0755 "$HOME2" "$HOME2/aux" "$HOME2/mom_logs"
  install -d -m 0751 "$HOME2/mom_priv" "$HOME2/mom_priv/jobs"
  install -d -m 1777 "$HOME2/checkpoint"
  install -d -m 1777 "$HOME2/spool" "$HOME2/undelivered"
  echo $SERVER >"$HOME2/server_name"
  cp "$HOME1/pbs_environment" "$HOME2/pbs_environment"
  mom_config "$HOME2"
fi

for h in "$HOME1" "$HOME2"; do
  [ -d "$h/mom_priv" ] || continue
  for f in prologue epilogue prologue.parallel epilogue.parallel prologue.user epilogue.user jobstarter; do
    [ -e "$h/mom_priv/$f" ] && say "note: $h/mom_priv/$f exists (not ours; left as it is)"
  done
  grep -q '^[[:space:]]*\$job_starter' "$h/mom_priv/config" 2>/dev/null \
    && say "note: $h/mom_priv/config sets \$job_starter (not ours; left as it is)"
done

# --- trqauthd: clients (qsub, qmgr, ...) authenticate through it -----------------------
if ! pgrep -x trqauthd >/dev/null; then
  say "starting trqauthd"
  trqauthd >/dev/null 2>&1 || die "trqauthd did not start"
fi

# --- pbs_server ----------------------------------------------------------------------
server_up() { qmgr -c 'list server' >/dev/null 2>&1; }
if lock_pid "$HOME1/server_priv/server.lock" pbs_server >/dev/null; then
  :
elif [ ! -f "$HOME1/server_priv/serverdb" ]; then
  say "creating the server database (pbs_server -t create)"
  : >"$HOME1/server_priv/nodes"
  pbs_server -t create -f || die "pbs_server -t create failed (see $HOME1/server_logs)"
  wait_for 60 "pbs_server" server_up || die "pbs_server -t create does not answer qmgr (see $HOME1/server_logs)"
  # -t create empties server_priv after taking its lock, server.lock included: restart it
  # once so that it has a lock file (stop.sh finds the pid there).
  pid=$(pgrep -x pbs_server | head -n 1)
  qterm -t quick >/dev/null 2>&1 || true
  n=60; while kill -0 "$pid" 2>/dev/null; do n=$((n - 1)); [ $n -gt 0 ] || die "pbs_server $pid did not stop after -t create"; sleep 0.5; done
  say "starting pbs_server"
  pbs_server || die "pbs_server did not start (see $HOME1/server_logs)"
else
  say "starting pbs_server"
  pbs_server || die "pbs_server did not start (see $HOME1/server_logs)"
fi
wait_for 60 "pbs_server" server_up || die "pbs_server does not answer qmgr (see $HOME1/server_logs)"

q() { qmgr -c "$1" >/dev/null || die "qmgr -c \"$1\" failed"; }
q "set server scheduling = true"
# `+=` of an entry a list already has is an error: add only what is missing.
add() { # ATTRIBUTE VALUE
  qmgr -c "list server $1" 2>/dev/null | grep -q "[ =,]$2\(,\|\$\)" || q "set server $1 += $2"
}
add managers root@$SERVER
add operators root@$SERVER
q "set server allow_node_submit = true"
q "set server query_other_jobs = true"
q "set server keep_completed = 300"
q "set server mom_job_sync = true"
q "set server node_check_rate = 150"
q "set server job_stat_rate = 30"
for queue in batch unmanaged; do
  qmgr -c "list queue $queue" >/dev/null 2>&1 || q "create queue $queue queue_type = execution"
  q "set queue $queue enabled = true"
  q "set queue $queue started = true"
done
q "set server default_queue = batch"

# Nodes: vm at TORQUE's default ports, vm2 (with --moms 2) at its own.
has_node() { pbsnodes "$1" >/dev/null 2>&1; }
has_node $SERVER || q "create node $SERVER np=$NP"
q "set node $SERVER np = $NP"
if [ "$MOMS" = 2 ]; then
  has_node $NODE2 || q "create node $NODE2 np=$NP,mom_service_port=$MOM2_PORT,mom_manager_port=$MOM2_RM_PORT"
  q "set node $NODE2 np = $NP"
elif has_node $NODE2; then
  say "removing node $NODE2 (--moms 1)"
  p=$(lock_pid "$HOME2/mom_priv/mom$MOM2_PORT.lock" pbs_mom || true)
  [ -n "$p" ] && { momctl -s -h $NODE2 -p $MOM2_RM_PORT >/dev/null 2>&1 || kill "$p"; }
  q "delete node $NODE2"
fi

# --- pbs_sched -----------------------------------------------------------------------
if ! lock_pid "$HOME1/sched_priv/sched.lock" pbs_sched >/dev/null; then
  say "starting pbs_sched"
  pbs_sched || die "pbs_sched did not start (see $HOME1/sched_logs)"
fi

# --- pbs_mom(s) ----------------------------------------------------------------------
if ! lock_pid "$HOME1/mom_priv/mom.lock" pbs_mom >/dev/null; then
  say "starting pbs_mom for node $SERVER (PBS_HOME $HOME1, ports 15002/15003)"
  pbs_mom || die "pbs_mom did not start (see $HOME1/mom_logs)"
fi
if [ "$MOMS" = 2 ] && ! lock_pid "$HOME2/mom_priv/mom$MOM2_PORT.lock" pbs_mom >/dev/null; then
  say "starting pbs_mom for node $NODE2 (PBS_HOME $HOME2, ports $MOM2_PORT/$MOM2_RM_PORT)"
  pbs_mom -m -d "$HOME2" -M $MOM2_PORT -R $MOM2_RM_PORT -A $NODE2 || die "pbs_mom did not start (see $HOME2/mom_logs)"
fi

# --- wait until the nodes are up ---------------------------------------------------------
node_free() { pbsnodes "$1" 2>/dev/null | grep -q '^ *state = free'; }
nodes=$SERVER; [ "$MOMS" = 2 ] && nodes="$SERVER $NODE2"
for node in $nodes; do
  wait_for 120 "node $node" node_free "$node" || {
    pbsnodes "$node" >&2 || true
    die "node $node is not free after 120s (its state and note above; see the mom_logs of its PBS_HOME and $HOME1/server_logs)"
  }
done
say "ready: server $SERVER, queues batch (default) and unmanaged, nodes: $nodes (np=$NP each)"
