#!/bin/sh
# Checks by hand-made jobs that the TORQUE cluster of scripts/torque/start.sh runs jobs
# natively (no cbatch involved): as a non-root USER (TORQUE's qsub refuses root), in a fresh
# directory of the user's home it submits
#   1. a trivial job on queue batch, and checks its .o file (the user, the node, "hello");
#   2. a job on queue unmanaged;
#   3. -l nodes=vm:ppn=1 (a host-named spec), and checks it ran on vm;
#   4. with node vm2 up: -l nodes=2:ppn=1 running `pbsdsh hostname`, and checks both tasks ran,
#      one under each pbs_mom;
#   5. qdel of a sleeping job, and checks it ended and its process is gone.
# Prints "N passed, N failed" and exits non-zero on any failure (then its files are kept).
#
#   scripts/torque/smoke.sh [USER]      (default: cbatchtest)
set -eu

U=${1:-cbatchtest}
PATH=/usr/local/sbin:/usr/local/bin:$PATH
export PATH
die() { echo "torque/smoke: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (it submits as $U with su)"
id "$U" >/dev/null 2>&1 || die "no user $U (e.g. useradd -m torqtest, then: $0 torqtest)"
pbsnodes vm >/dev/null 2>&1 || die "the cluster is not running: scripts/torque/start.sh --moms 2"

home=$(getent passwd "$U" | cut -d: -f6)
dir=$(su "$U" -c "mktemp -d '$home/torque-smoke.XXXXXX'") || die "cannot make a directory in $home as $U"
as() { su "$U" -c "cd '$dir' && $1"; }
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1"; shift; for f in "$@"; do [ -f "$f" ] && sed 's/^/     | /' "$f"; done; }

# Waits until a job is complete (qstat shows C, or no longer knows it) and its .o file is there.
done_job() { # JOBID OFILE
  n=120
  while :; do
    s=$(qstat -f "$1" 2>/dev/null | sed -n 's/^ *job_state = //p')
    { [ -z "$s" ] || [ "$s" = C ]; } && [ -f "$2" ] && return 0
    n=$((n - 1)); [ $n -gt 0 ] || return 1
    sleep 0.5
  done
}

printf 'echo hello; hostname; id -un\n' >"$dir/hello.sh"
printf 'echo queue=$PBS_QUEUE\n' >"$dir/queue.sh"
printf 'cat $PBS_NODEFILE\n' >"$dir/named.sh"
printf 'pbsdsh hostname\npbsdsh sh -c '"'"'echo task $PBS_VNODENUM mom $PBS_MOMPORT'"'"'\n' >"$dir/dsh.sh"
printf 'echo started; sleep 600; echo not-killed\n' >"$dir/sleep.sh"
chown "$U" "$dir"/*.sh

j=$(as "qsub -q batch -N hello hello.sh") || die "qsub failed"
o=$dir/hello.o${j%%.*}
if done_job "$j" "$o" && [ "$(cat "$o")" = "$(printf 'hello\nvm\n%s' "$U")" ]; then ok "batch job $j: .o has hello/vm/$U"
else ko "batch job $j: .o file $o" "$o" "$dir/hello.e${j%%.*}"; fi

j=$(as "qsub -q unmanaged -N queue queue.sh") || die "qsub failed"
o=$dir/queue.o${j%%.*}
if done_job "$j" "$o" && grep -qx 'queue=unmanaged' "$o"; then ok "unmanaged job $j"
else ko "unmanaged job $j" "$o"; fi

j=$(as "qsub -l nodes=vm:ppn=1 -N named named.sh") || die "qsub failed"
o=$dir/named.o${j%%.*}
if done_job "$j" "$o" && [ "$(cat "$o")" = vm ]; then ok "nodes=vm:ppn=1 job $j ran on vm"
else ko "nodes=vm:ppn=1 job $j" "$o"; fi

if pbsnodes vm2 2>/dev/null | grep -q '^ *state = free'; then
  j=$(as "qsub -l nodes=2:ppn=1 -N dsh dsh.sh") || die "qsub failed"
  o=$dir/dsh.o${j%%.*}
  if done_job "$j" "$o" && [ "$(grep -c '^vm$' "$o")" = 2 ] && grep -q 'mom 15003$' "$o" && grep -q 'mom 30003$' "$o"; then
    ok "nodes=2:ppn=1 job $j: pbsdsh ran a task under each mom ($(qstat -f "$j" 2>/dev/null | sed -n 's/^ *exec_host = //p'))"
  else ko "nodes=2:ppn=1 job $j" "$o" "$dir/dsh.e${j%%.*}"; fi
else
  echo "skip nodes=2:ppn=1 (node vm2 is not up: start.sh --moms 2)"
fi

j=$(as "qsub -N sleeper sleep.sh") || die "qsub failed"
n=60; while [ "$(qstat -f "$j" | sed -n 's/^ *job_state = //p')" != R ]; do
  n=$((n - 1)); [ $n -gt 0 ] || break; sleep 0.5; done
sleep 1
as "qdel $j" || true
o=$dir/sleeper.o${j%%.*}
if done_job "$j" "$o" && grep -qx started "$o" && ! grep -q not-killed "$o" \
   && ! pgrep -u "$U" -f "sleep 600" >/dev/null; then ok "qdel of running job $j"
else ko "qdel of running job $j" "$o"; fi

if [ "$fail" = 0 ]; then rm -rf "$dir"; else echo "torque/smoke: the jobs' files are in $dir"; fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
