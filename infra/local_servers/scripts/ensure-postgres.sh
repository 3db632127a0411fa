#!/usr/bin/env bash
# Make PostgreSQL server binaries available for throwaway test servers
# (infra/local_servers/postgres_cluster.py). Idempotent. Prints the bin dir containing initdb.
# Never starts (or creates) Debian's own "main" cluster: we only want binaries.
set -euo pipefail

die() { echo "ensure-postgres: $*" >&2; exit 1; }

find_bin_dir() {
    local dir
    # Newest versioned Debian dir first, then whatever is on PATH.
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | while read -r d; do
        if [ -x "$d/initdb" ]; then echo "$d"; fi; done | tail -n1) || true
    if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(readlink -f "$(command -v initdb)")")
    fi
    echo "$dir"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"; fi
}

install_postgres() {
    command -v apt-get >/dev/null 2>&1 || die "initdb not found and apt-get unavailable; install PostgreSQL server binaries manually"
    # Tell postgresql-common's postinst not to create the "main" cluster.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.d/00-no-main-cluster.conf >/dev/null
    # Stop invoke-rc.d from starting services during install (Docker images already ship one).
    local added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q || rc=$?
    [ $rc -eq 0 ] && { as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends postgresql || rc=$?; }
    if [ -n "$added_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
    [ $rc -eq 0 ] || die "apt-get failed (exit $rc) installing postgresql"
}

ensure_user() {
    id -u postgres >/dev/null 2>&1 && return 0
    # Debian's postgresql-common creates this user; cover binaries from elsewhere.
    as_root useradd --system --user-group --home-dir /var/lib/postgresql \
        --shell /bin/sh postgres || die "could not create OS user 'postgres'"
}

bin_dir=$(find_bin_dir)
if [ -z "$bin_dir" ]; then
    install_postgres
    bin_dir=$(find_bin_dir)
    [ -n "$bin_dir" ] || die "postgresql installed but initdb still not found"
fi
ensure_user
echo "$bin_dir"
