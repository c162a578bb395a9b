#!/bin/sh
# Builds and installs a real TORQUE 6.1 (prefix /usr/local, PBS_HOME /var/spool/torque,
# default server "vm") from a copy of TORQUE's public source, for cbatch's real-TORQUE
# test tier. TORQUE's code is never part of this project: pass its source on the command line.
#
#   scripts/torque/build.sh SRC            SRC = a TORQUE source tree (has configure.ac),
#                                          or a git dir / clone (branch 6.1-dev is used)
#   FORCE=1 scripts/torque/build.sh SRC    rebuild even if TORQUE 6.1 is already installed
#
# Installs its Debian build dependencies with apt; downloads nothing else. Builds without
# cgroups, GUI, Tcl or DRMAA. Debian 12's autoconf 2.71 breaks TORQUE's configure.ac, so the
# autotools run with autoconf2.69. Takes 17-25 minutes on 2 cores (make -j2 is most of it).
set -eu

BRANCH=${TORQUE_BRANCH:-6.1-dev}
BUILD_DIR=${TORQUE_BUILD_DIR:-/var/tmp/torque-build}
PREFIX=/usr/local
die() { echo "torque/build: $*" >&2; exit 1; }
say() { echo "torque/build: $*"; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and TORQUE)"
[ $# -eq 1 ] || die "usage: $0 TORQUE_SOURCE_DIR_OR_GIT_DIR"
SRC=$1
[ -e "$SRC" ] || die "$SRC does not exist"

if [ -z "${FORCE:-}" ] && [ -x "$PREFIX/sbin/pbs_server" ] && [ -x "$PREFIX/sbin/pbs_mom" ] \
   && [ -x "$PREFIX/bin/qsub" ] && "$PREFIX/sbin/pbs_server" --version 2>&1 | grep -q 'Version: 6\.1'; then
  say "TORQUE $("$PREFIX/sbin/pbs_server" --version 2>&1 | sed -n 's/^Version: //p') is already installed in $PREFIX (FORCE=1 to rebuild)"
  exit 0
fi

start=$(date +%s)

# Build dependencies (Debian packages only).
DEPS="build-essential libtool automake autoconf2.69 libssl-dev libxml2-dev libboost-dev pkg-config git"
missing=""
for p in $DEPS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing$missing"
  apt-get update -q >/dev/null || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || die "apt-get install$missing failed"
fi

# What SRC is, before anything is changed.
if [ -f "$SRC/configure.ac" ] && [ -d "$SRC/src/resmom" ]; then
  kind=tree
elif git --git-dir="$SRC" rev-parse --verify -q "$BRANCH^{commit}" >/dev/null 2>&1; then
  kind=git gd=$SRC
elif git --git-dir="$SRC/.git" rev-parse --verify -q "$BRANCH^{commit}" >/dev/null 2>&1; then
  kind=git gd=$SRC/.git
else
  die "$SRC is neither a TORQUE source tree (configure.ac, src/resmom) nor a git dir with branch $BRANCH"
fi

case $BUILD_DIR in /*/*) ;; *) die "TORQUE_BUILD_DIR=$BUILD_DIR: give an absolute path at least two levels deep (it is emptied)" ;; esac
[ "$(cd "$SRC" && pwd -P)" != "$(mkdir -p "$BUILD_DIR" && cd "$BUILD_DIR" && pwd -P)" ] || die "TORQUE_BUILD_DIR may not be SRC"

# A fresh copy of the source in BUILD_DIR (the caller's tree is never modified).
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
if [ $kind = tree ]; then
  say "copying source tree $SRC"
  (cd "$SRC" && tar -c --exclude=.git .) | tar -x -C "$BUILD_DIR"
else
  say "exporting branch $BRANCH ($(git --git-dir="$gd" rev-parse --short "$BRANCH^{commit}")) from $gd"
  git --git-dir="$gd" archive "$BRANCH" | tar -x -C "$BUILD_DIR"
fi

cd "$BUILD_DIR"
LOG=$BUILD_DIR/build.log
: >"$LOG"
step() { say "$1 (log: $LOG)"; shift; "$@" >>"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; die "failed: $*"; }; }

# autogen.sh, but with autoconf 2.69 (Debian's 2.71 produces a broken configure).
export AUTOCONF=autoconf2.69 AUTOHEADER=autoheader2.69 AUTOM4TE=autom4te2.69 AUTORECONF=autoreconf2.69
mkdir -p m4
step "libtoolize" libtoolize -c -f
step "aclocal" aclocal
step "autoconf2.69" autoconf2.69 -f
step "autoheader2.69" autoheader2.69 -f
step "automake" automake -a -c -f

# --disable-gcc-warnings: TORQUE otherwise builds with -Werror, which a modern gcc trips.
step "configure" ./configure --prefix="$PREFIX" --with-default-server=vm \
  --disable-gui --without-tcl --disable-drmaa --disable-gcc-warnings
step "make -j$(nproc) (the long part)" make -j"$(nproc)"
step "make install" make install
ldconfig

# make install writes the default server name; make sure it is ours.
echo vm >/var/spool/torque/server_name

end=$(date +%s)
say "installed TORQUE $("$PREFIX/sbin/pbs_server" --version 2>&1 | sed -n 's/^Version: //p') in $(( (end - start) / 60 ))m$(( (end - start) % 60 ))s"
