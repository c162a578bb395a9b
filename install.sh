#!/bin/sh
# Installs cbatch on a TORQUE compute node: the bundled hooks into mom_priv, the job
# starter lines into mom_priv/config, `cbatch` on PATH, an example cbatch.yaml if none exists.
# From a release tarball (npm run release) it installs what was built there: no npm, no network.
#
#   ./install.sh [--pbs-home DIR] [--config-dir DIR] [--bin-dir DIR] [--node FILE] [--no-node-check] [--no-build] [--dry-run]
#   ./install.sh --uninstall [--pbs-home DIR] [--bin-dir DIR] [--dry-run]
#   ./install.sh --demo        try cbatch on this machine without TORQUE (a source checkout only)
#
# Idempotent: running it again changes nothing that is already in place. Upgrading is running
# a newer release's install.sh; rolling back, an older one's (docs/admin.md).
set -eu

PBS_HOME=/var/spool/torque
CONFIG_DIR=/etc/cbatch
BIN_DIR=/usr/local/sbin
NODE=""
ACTION=install
DRY=""
BUILD=yes
NODE_CHECK=yes
MARK="# cbatch"
HERE=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
run() { if [ -n "$DRY" ]; then echo "would run: $*"; else "$@"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --pbs-home) [ $# -ge 2 ] || die "--pbs-home needs a directory"; PBS_HOME=$2; shift ;;
    --config-dir) [ $# -ge 2 ] || die "--config-dir needs a directory"; CONFIG_DIR=$2; shift ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift ;;
    --node) [ $# -ge 2 ] || die "--node needs the node program"; NODE=$2; shift ;;
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
# Paths written into the wrappers between single quotes, by sed.
safe_path() {
  case "$2" in
    /*) ;;
    *) die "$1 must be an absolute path" ;;
  esac
  case "$2" in
    *"'"*|*"|"*|*"&"*|*\\*|*"
"*) die "$1 may not hold quotes, '|', '&', backslashes or newlines: $2" ;;
  esac
}
safe_path --config-dir "$CONFIG_DIR"
safe_path --pbs-home "$PBS_HOME"
safe_path --bin-dir "$BIN_DIR"

MOM_PRIV=$PBS_HOME/mom_priv
MOM_CONFIG=$MOM_PRIV/config

# A release tarball carries its build; a source checkout builds here (npm ci: registry access).
RELEASE=""
[ -f "$HERE/RELEASE" ] && RELEASE=$(cat "$HERE/RELEASE")

build() {
  [ -n "$BUILD" ] && [ -z "$RELEASE" ] || return 0
  command -v npm >/dev/null || die "npm is needed to build from a source checkout; or install from a release tarball (npm run release)"
  say "installing npm dependencies and building (a release tarball needs neither: npm run release)"
  run sh -c "cd '$HERE' && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build"
}

# Everything that can fail fast is checked before the build, the one long step.
check_node() {
  [ -d "$MOM_PRIV" ] || die "$MOM_PRIV does not exist: is pbs_mom installed? (use --pbs-home DIR)"
  # The hooks' wrappers run as root among the job owner's variables: their shell must be
  # statically linked, or LD_PRELOAD of a job would run as root.
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 \
    || die "/bin/busybox must be the statically linked one: apt-get install busybox-static"
  # The wrappers start node by its absolute path: the job's PATH never chooses it.
  [ -n "$NODE" ] || NODE=$(command -v node) || die "Node.js 20 or newer is needed (apt-get install nodejs), or name it with --node FILE"
  safe_path "the node program" "$NODE"
  "$NODE" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null \
    || die "$NODE is not Node.js 20 or newer (cbatch's bundles need it)"
  [ -n "$RELEASE" ] || [ -n "$BUILD" ] || [ -n "$DRY" ] || [ -f "$HERE/dist/prologue" ] \
    || die "dist/ is not built: run without --no-build"
}

# Replaces DEST by SRC in one rename, so a hook that starts meanwhile finds the old file or the
# new one, whole.
put() {
  mode=$1 src=$2 dest=$3
  if [ -n "$DRY" ]; then echo "would run: install -o root -g root -m $mode $src $dest"; return; fi
  install -o root -g root -m "$mode" "$src" "$dest.cbatch-new"
  mv -f "$dest.cbatch-new" "$dest"
}

is_ours() { [ -f "$1" ] && grep -q "^# cbatch .* hook for pbs_mom" "$1"; }
# The cbatch install.sh put on PATH, and whether it runs this mom_priv's CLI.
is_our_cli() { [ -f "$BIN_DIR/cbatch" ] && grep -q '^# cbatch CLI, put here by install.sh' "$BIN_DIR/cbatch"; }
serves_this_mom() { grep -qF "'$MOM_PRIV/cbatch.d/cbatch'" "$BIN_DIR/cbatch"; }
# Each program pbs_mom runs and the file in mom_priv it runs it by (its own names for the
# hooks, ours for the node check), as the build listed them (lib/torque/hooks.ts): the
# install's own copy, which --uninstall reads, else the build's in dist/.
hook_list() {
  for list in "$@"; do
    if [ -f "$list" ]; then cat "$list"; return; fi
  done
  die "no list of hooks in $*: build first (npm run build), or install from a release tarball"
}

install_hooks() {
  [ -n "$RELEASE" ] && say "installing cbatch $RELEASE"
  run install -d -o root -g root -m 0755 "$MOM_PRIV/cbatch.d"
  # The bundles first, the wrappers that start them last: every bundle the build made, and
  # load.cjs, which starts each hook from V8's code cache the hooks keep beside their bundles.
  for bundle in "$HERE"/dist/cbatch.d/*.cjs; do
    [ -f "$bundle" ] || continue # --dry-run before a build
    put 0644 "$bundle" "$MOM_PRIV/cbatch.d/${bundle##*/}"
  done
  # The CLI, for `cbatch gc` from cron and the operator's commands.
  put 0755 "$HERE/dist/cbatch" "$MOM_PRIV/cbatch.d/cbatch"
  put 0644 "$HERE/dist/package.json" "$MOM_PRIV/cbatch.d/package.json"
  hooks=$(hook_list "$HERE/dist/hooks.txt")
  put 0644 "$HERE/dist/hooks.txt" "$MOM_PRIV/cbatch.d/hooks.txt"
  while read -r hook file; do
    case $file in ''|*/*|.*) continue ;; esac # a name in mom_priv, nothing else
    target=$MOM_PRIV/$file
    if [ -e "$target" ] && ! is_ours "$target" && [ ! -e "$target.cbatch-orig" ]; then
      say "keeping the site's $hook as $target.cbatch-orig"
      run mv "$target" "$target.cbatch-orig"
    fi
    # pbs_mom's check: owned by root, owner r+x, not writable by group or others. The
    # wrapper names the config file and this node's node program: never taken from a job.
    wrapper=$(mktemp)
    sed -e "s|CBATCH_CONFIG='[^']*'|CBATCH_CONFIG='$CONFIG_DIR/cbatch.yaml'|" \
      -e "s|'[^']*' \"\\\${0%/\\*}/cbatch.d/load.cjs\"|'$NODE' \"\\\${0%/*}/cbatch.d/load.cjs\"|" "$HERE/dist/$hook" >"$wrapper"
    grep -q "^  CBATCH_JOB_MEMCG=.* '$NODE' \"" "$wrapper" || die "dist/$hook does not start node as install.sh expects: a mismatched dist/?"
    put 0755 "$wrapper" "$target"
    rm -f "$wrapper"
  done <<EOF
$hooks
EOF

  # `cbatch` on PATH, bound to this install's config and node, whatever the caller's PATH (cron's).
  cli=$(mktemp)
  printf '%s\n' '#!/bin/sh' "# cbatch CLI, put here by install.sh; $MOM_PRIV/cbatch.d holds it" \
    "CBATCH_CONFIG='$CONFIG_DIR/cbatch.yaml' exec '$NODE' '$MOM_PRIV/cbatch.d/cbatch' \"\$@\"" >"$cli"
  run install -d -m 0755 "$BIN_DIR"
  if is_our_cli && ! serves_this_mom; then
    say "$BIN_DIR/cbatch served another pbs_mom; now it serves $MOM_PRIV (several moms on a node: give each its own --bin-dir)"
  fi
  put 0755 "$cli" "$BIN_DIR/cbatch"
  rm -f "$cli"

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
  [ "$PBS_HOME" = /var/spool/torque ] || say "set torque.home: $PBS_HOME in $CONFIG_DIR/cbatch.yaml, for cbatch ps, doctor and gc"
  say "optional, as /etc/cron.d/cbatch (removes orphaned containers; pre-pulls the queues' images):"
  echo "*/15 * * * * root $BIN_DIR/cbatch gc --pbs-home $PBS_HOME"
  echo "17 3 * * * root $BIN_DIR/cbatch images pull"
}

uninstall_hooks() {
  hooks=$(hook_list "$MOM_PRIV/cbatch.d/hooks.txt" "$HERE/dist/hooks.txt")
  while read -r hook file; do
    case $file in ''|*/*|.*) continue ;; esac # a name in mom_priv, nothing else
    target=$MOM_PRIV/$file
    if is_ours "$target"; then run rm -f "$target"; fi
    if [ -e "$target.cbatch-orig" ]; then
      say "restoring the site's $hook"
      run mv "$target.cbatch-orig" "$target"
    fi
  done <<EOF
$hooks
EOF
  run rm -rf "$MOM_PRIV/cbatch.d"
  if is_our_cli && serves_this_mom; then run rm -f "$BIN_DIR/cbatch"; fi
  if [ -f "$MOM_CONFIG" ]; then
    say "removing the job starter from $MOM_CONFIG"
    [ -n "$DRY" ] || sed -i -e "/$MARK\$/d" -e "s/^#cbatch-disabled //" "$MOM_CONFIG"
  fi
  say "done; $CONFIG_DIR and /var/log/cbatch are left in place. Restart pbs_mom (or HUP it)."
}

demo() {
  [ -z "$RELEASE" ] || die "--demo needs a source checkout (it provisions test images and users)"
  run "$HERE/scripts/provision.sh"
  build
  say "running examples/hello.sh as cbatchdemo, the way pbs_mom would:"
  run "$HERE/dist/cbatch" run "$HERE/examples/hello.sh" --user cbatchdemo --config "$HERE/config/cbatch.yaml" --resources nodes=1:ppn=1,mem=256mb
}

case "$ACTION" in
  install) check_node; build; install_hooks ;;
  uninstall) uninstall_hooks ;;
  demo) demo ;;
esac
