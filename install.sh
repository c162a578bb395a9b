#!/bin/sh
# Installs cbatch on a TORQUE compute node: the bundled hooks into mom_priv, the job
# starter lines into mom_priv/config, an example /etc/cbatch/cbatch.yaml if none exists.
#
#   ./install.sh [--pbs-home DIR] [--config-dir DIR] [--no-node-check] [--no-build] [--dry-run]
#   ./install.sh --uninstall [--pbs-home DIR] [--dry-run]
#   ./install.sh --demo        try cbatch on this machine without TORQUE
#
# Idempotent: running it again changes nothing that is already in place.
set -eu

PBS_HOME=/var/spool/torque
CONFIG_DIR=/etc/cbatch
ACTION=install
DRY=""
BUILD=yes
NODE_CHECK=yes
MARK="# cbatch"
HERE=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
run() { if [ -n "$DRY" ]; then echo "would run: $*"; else "$@"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --pbs-home) [ $# -ge 2 ] || die "--pbs-home needs a directory"; PBS_HOME=$2; shift ;;
    --config-dir) [ $# -ge 2 ] || die "--config-dir needs a directory"; CONFIG_DIR=$2; shift ;;
    --uninstall) ACTION=uninstall ;;
    --demo) ACTION=demo ;;
    --dry-run) DRY=yes ;;
    --no-build) BUILD="" ;;
    --node-check) NODE_CHECK=yes ;;
    --no-node-check) NODE_CHECK="" ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 64 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || die "run as root: the hooks must be root-owned for pbs_mom to run them"
case "$CONFIG_DIR" in
  /*) ;;
  *) die "--config-dir must be an absolute path" ;;
esac
case "$CONFIG_DIR" in
  *"'"*|*"|"*|*"
"*) die "--config-dir may not hold quotes, '|' or newlines" ;;
esac

MOM_PRIV=$PBS_HOME/mom_priv
MOM_CONFIG=$MOM_PRIV/config
# prologue.parallel and epilogue.parallel run on sister nodes; they share the bundles of
# the prologue and epilogue.
HOOKS="prologue prologue.parallel epilogue epilogue.parallel jobstarter"

build() {
  [ -n "$BUILD" ] || return 0
  command -v node >/dev/null || die "Node.js 20 or newer is needed (apt-get install nodejs npm)"
  say "installing npm dependencies and building"
  run sh -c "cd '$HERE' && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build"
}

is_ours() { [ -f "$1" ] && grep -q "^# cbatch .* hook for pbs_mom" "$1"; }
# Where pbs_mom finds each program: its own names for the hooks, ours for the node check.
hook_file() { if [ "$1" = nodecheck ]; then echo cbatch-nodecheck; else echo "$1"; fi; }

install_hooks() {
  [ -d "$MOM_PRIV" ] || die "$MOM_PRIV does not exist: is pbs_mom installed? (use --pbs-home DIR)"
  # The hooks' wrappers run as root among the job owner's variables: their shell must be
  # statically linked, or LD_PRELOAD of a job would run as root.
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
    || die "/bin/busybox must be the statically linked one: apt-get install busybox-static"
  [ -n "$DRY" ] || [ -f "$HERE/dist/prologue" ] || die "dist/ is not built: run without --no-build"
  run install -d -o root -g root -m 0755 "$MOM_PRIV/cbatch.d"
  # The CLI, for `cbatch gc` from cron (and `cbatch run` to try a job on this node).
  run install -o root -g root -m 0755 "$HERE/dist/cbatch" "$MOM_PRIV/cbatch.d/cbatch"
  # Starts each hook from V8's code cache, which the hooks keep beside their bundles.
  run install -o root -g root -m 0644 "$HERE/dist/cbatch.d/load.cjs" "$MOM_PRIV/cbatch.d/load.cjs"
  for bundle in prologue epilogue jobstarter nodecheck puller; do
    run install -o root -g root -m 0644 "$HERE/dist/cbatch.d/$bundle.cjs" "$MOM_PRIV/cbatch.d/$bundle.cjs"
  done
  for hook in $HOOKS nodecheck; do
    target=$MOM_PRIV/$(hook_file "$hook")
    if [ -e "$target" ] && ! is_ours "$target" && [ ! -e "$target.cbatch-orig" ]; then
      say "keeping the site's $hook as $target.cbatch-orig"
      run mv "$target" "$target.cbatch-orig"
    fi
    # pbs_mom's check: owned by root, owner r+x, not writable by group or others. The
    # wrapper names the config file itself: the hooks never take it from a job.
    wrapper=$(mktemp)
    sed "s|CBATCH_CONFIG='[^']*'|CBATCH_CONFIG='$CONFIG_DIR/cbatch.yaml'|" "$HERE/dist/$hook" >"$wrapper"
    run install -o root -g root -m 0755 "$wrapper" "$target"
    rm -f "$wrapper"
  done

  if [ -f "$MOM_CONFIG" ] && grep -q "^\\\$job_starter .*$MARK" "$MOM_CONFIG"; then
    say "$MOM_CONFIG already names the cbatch job starter"
  else
    say "adding the job starter to $MOM_CONFIG"
    if [ -z "$DRY" ]; then
      touch "$MOM_CONFIG"
      # A job starter of the site's own is disabled, and restored by --uninstall.
      sed -i -e "s/^\\(\\\$job_starter\\(_run_privileged\\)\\{0,1\\}[[:space:]].*\\)$/#cbatch-disabled \\1/" "$MOM_CONFIG"
      printf '%s\n' "\$job_starter $MOM_PRIV/jobstarter $MARK" "\$job_starter_run_privileged true $MARK" >>"$MOM_CONFIG"
    fi
  fi

  # pbs_mom logs a job's secret cookie when a TM request brings a wrong one: the only proof of
  # whose job a task is must not be readable by other users.
  if [ -d "$PBS_HOME/mom_logs" ]; then
    say "making $PBS_HOME/mom_logs root's alone (pbs_mom logs jobs' cookies there)"
    run chmod 0700 "$PBS_HOME/mom_logs"
  fi

  # The node check takes a node whose engine or config cannot run jobs out of scheduling.
  if grep -q "^\\\$node_check_script .*$MARK" "$MOM_CONFIG" 2>/dev/null; then
    :
  elif grep -q '^\$node_check_script' "$MOM_CONFIG" 2>/dev/null; then
    say "keeping the site's \$node_check_script: have it run $MOM_PRIV/cbatch-nodecheck too (it prints ERROR lines)"
  elif [ -n "$NODE_CHECK" ]; then
    say "adding the cbatch node check to $MOM_CONFIG"
    [ -n "$DRY" ] || printf '%s\n' "\$node_check_script $MOM_PRIV/cbatch-nodecheck $MARK" >>"$MOM_CONFIG"
  else
    say "no node check (--no-node-check): a node whose engine is down, or whose prologue keeps requeueing, keeps taking jobs"
  fi

  if [ -e "$CONFIG_DIR/cbatch.yaml" ]; then
    say "keeping the existing $CONFIG_DIR/cbatch.yaml"
  else
    run install -d -m 0755 "$CONFIG_DIR"
    run install -o root -g root -m 0644 "$HERE/config/cbatch.yaml" "$CONFIG_DIR/cbatch.yaml"
    run install -o root -g root -m 0644 "$HERE/config/cbatch.schema.json" "$CONFIG_DIR/cbatch.schema.json"
  fi
  run install -d -m 0755 /var/log/cbatch
  say "done. Edit $CONFIG_DIR/cbatch.yaml, then restart pbs_mom (or: kill -HUP \$(pgrep -x pbs_mom)) to read $MOM_CONFIG"
  say "optional, from cron: */15 * * * * $MOM_PRIV/cbatch.d/cbatch gc --pbs-home $PBS_HOME"
}

uninstall_hooks() {
  for hook in $HOOKS nodecheck; do
    target=$MOM_PRIV/$(hook_file "$hook")
    if is_ours "$target"; then run rm -f "$target"; fi
    if [ -e "$target.cbatch-orig" ]; then
      say "restoring the site's $hook"
      run mv "$target.cbatch-orig" "$target"
    fi
  done
  run rm -rf "$MOM_PRIV/cbatch.d"
  if [ -f "$MOM_CONFIG" ]; then
    say "removing the job starter from $MOM_CONFIG"
    [ -n "$DRY" ] || sed -i -e "/$MARK\$/d" -e "s/^#cbatch-disabled //" "$MOM_CONFIG"
  fi
  say "done; $CONFIG_DIR and /var/log/cbatch are left in place. Restart pbs_mom (or HUP it)."
}

demo() {
  run "$HERE/scripts/provision.sh"
  build
  say "running examples/hello.sh as cbatchdemo, the way pbs_mom would:"
  run "$HERE/dist/cbatch" run "$HERE/examples/hello.sh" --user cbatchdemo --config "$HERE/config/cbatch.yaml" --resources nodes=1:ppn=1,mem=256mb
}

case "$ACTION" in
  install) build; install_hooks ;;
  uninstall) uninstall_hooks ;;
  demo) demo ;;
esac
