#!/bin/sh
# The job store contract tests, SQLite store only, on Debian 11's own libsqlite3 (3.34.1), loaded into this machine's Python.
# Needs apt-get and dpkg-deb (Debian or Ubuntu) and a C compiler; fetches from the Debian archive this
# machine's apt is configured with, with apt state kept in $WORK (the system's apt configuration is left alone).
# Usage: tests/old_sqlite/run.sh PYTHON [pytest args...]
set -eu
PYTHON=$1; shift
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${OLD_SQLITE_DIR:-${TMPDIR:-/tmp}/framefarm-old-sqlite}
ARCH=$(dpkg --print-architecture)
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
: > "$WORK/status"  # an empty dpkg status: the installed libsqlite3 is not a candidate
MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -E '^(URIs:|deb )' \
         | grep -o -E 'https?://[^ ]*/debian' | head -n 1)
[ -n "$MIRROR" ] || { echo "no Debian archive in this machine's apt sources" >&2; exit 2; }
cat > "$WORK/sources.list" <<LIST
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bullseye main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR-security bullseye-security main
LIST
APT="-o Dir::Etc::SourceList=$WORK/sources.list -o Dir::Etc::SourceParts=/dev/null -o APT::Architecture=$ARCH
     -o Dir::State::status=$WORK/status -o Dir::State::Lists=$WORK/lists -o Dir::Cache=$WORK/cache -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache="
if [ ! -e "$WORK/root/usr/lib" ]; then
    apt-get -qq $APT update
    (cd "$WORK" && apt-get -qq $APT download libsqlite3-0)
    dpkg-deb -x "$WORK"/libsqlite3-0_*.deb "$WORK/root"
fi
cc -shared -fPIC -O2 -o "$WORK/serialize_stub.so" "$HERE/serialize_stub.c"
LIBDIR=$(dirname "$(find "$WORK/root" -name 'libsqlite3.so.0' | head -n 1)")
export LD_LIBRARY_PATH="$LIBDIR" LD_PRELOAD="$WORK/serialize_stub.so"
"$PYTHON" -c 'import sqlite3; print("SQLite", sqlite3.sqlite_version, "from Debian 11")'
exec "$PYTHON" -m pytest -q -p no:cacheprovider tests/unit/repositories/test_contract.py -k sqlite "$@"
