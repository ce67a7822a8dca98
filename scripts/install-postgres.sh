#!/usr/bin/env bash
# Makes PostgreSQL's server binaries (initdb, pg_ctl) available for the tests, which
# start private clusters of their own (server/src/pg_cluster.rs). Installs Debian's
# `postgresql` package where they are missing; the package's own cluster is not used.
set -euo pipefail

found() {
    if [ -n "${BRANCHLINE_PG_BIN:-}" ]; then
        [ -x "$BRANCHLINE_PG_BIN/initdb" ] && [ -x "$BRANCHLINE_PG_BIN/pg_ctl" ]
        return
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && return 0
    done
    command -v initdb >/dev/null && command -v pg_ctl >/dev/null
}

if found; then
    echo "PostgreSQL server binaries: present"
    exit 0
fi

echo "== installing postgresql"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql
found || { echo "postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
