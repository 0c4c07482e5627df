#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and demos (docs/design.md §13, §15): loopback only, trust
# authentication, data in a temporary directory. Not for production.
#   scripts/pg.sh start   initdb (first time) and start; prints the URL
#   scripts/pg.sh url     prints the URL of the running cluster (exit 1 if none is running)
#   scripts/pg.sh stop    stops it and removes its directory
# RUNTRUST_PG_DIR (default /tmp/runtrust-pg) holds the cluster; RUNTRUST_PG_PORT (default: a free port from
# 25432, below Linux's ephemeral range 32768-60999, so outgoing connections never hold it).
# As root, the server runs as the unprivileged `postgres` user (initdb refuses root).
set -euo pipefail

DIR="${RUNTRUST_PG_DIR:-/tmp/runtrust-pg}"
DATA="$DIR/data"
HINT="install PostgreSQL: apt-get install postgresql (or scripts/install-deps.sh)"

bindir() {
    local b
    for b in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x "$b/initdb" && -x "$b/pg_ctl" ]] && { echo "$b"; return; }
    done
    if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        pg_config --bindir
        return
    fi
    command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
    echo "pg.sh: no initdb/pg_ctl found; $HINT" >&2
    exit 1
}

# Runs a command as the cluster's owner (the postgres user when we are root).
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || { echo "pg.sh: as root this needs a 'postgres' user; $HINT" >&2; exit 1; }
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

url() {
    [[ -f "$DIR/port" ]] || return 1
    echo "postgres://postgres@127.0.0.1:$(cat "$DIR/port")/postgres"
}

running() {
    [[ -d "$DATA" ]] && as_owner "$(bindir)/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

start() {
    local bin
    bin="$(bindir)"
    if running; then
        url
        return
    fi
    mkdir -p "$DIR"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$DIR"
    chmod 0700 "$DIR"
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        as_owner "$bin/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 ||
            { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    local port="${RUNTRUST_PG_PORT:-}"
    if [[ -z "$port" ]]; then
        port=25432
        while ! port_free "$port"; do port=$((port + 1)); done
    fi
    echo "$port" >"$DIR/port"
    # Loopback and a socket in the cluster's own directory only; enough connections for parallel tests.
    as_owner "$bin/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 60 start -o \
        "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$DIR -c max_connections=400 -c shared_buffers=64MB" \
        >/dev/null || { tail -20 "$DIR/server.log" >&2; exit 1; }
    url
}

stop() {
    if [[ -d "$DATA" ]]; then
        as_owner "$(bindir)/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    # A port file left by a cluster that is gone (a reboot, a killed test run) is not a running cluster.
    url) { running && url; } || { echo "pg.sh: no cluster is running (scripts/pg.sh start)" >&2; exit 1; } ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
