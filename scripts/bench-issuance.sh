#!/usr/bin/env bash
# Issuance under load, end to end: a throwaway service on a loopback port, K simulated attesters (software
# TPMs, runtrust-loadgen) enrolled through the real API, then challenge + token requests from C concurrent
# keep-alive HTTPS clients for S seconds. Everything it starts, it stops.
#
#   scripts/bench-issuance.sh [--store sled|postgres] [--replicas N] [--hosts K] [--concurrency C] [--seconds S]
#   BENCH_RUNTRUST=/path/to/runtrust scripts/bench-issuance.sh ...   # serve another build (a baseline)
#
# The report goes to stderr; the last line (stdout) is
#   tokens/s: N floor/s: F ratio: R p99_ms: P errors: E
# where floor/s is the crypto floor measured in the same run (ring: one ECDSA P-256 verify + one Ed25519
# sign per token, single core, times the cores) and ratio = tokens/s / floor/s. docs/performance.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STORE=sled REPLICAS=1 HOSTS=1000 CONCURRENCY=32 SECONDS_=20
usage() { sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit "${1:-2}"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --store) STORE="${2:?--store needs a value}"; shift 2 ;;
        --replicas) REPLICAS="${2:?--replicas needs a value}"; shift 2 ;;
        --hosts) HOSTS="${2:?--hosts needs a value}"; shift 2 ;;
        --concurrency) CONCURRENCY="${2:?--concurrency needs a value}"; shift 2 ;;
        --seconds) SECONDS_="${2:?--seconds needs a value}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "bench-issuance.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done
for n in "$REPLICAS" "$HOSTS" "$CONCURRENCY" "$SECONDS_"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench-issuance.sh: $n is not a positive integer" >&2; exit 2; }
done
case "$STORE" in
    sled | postgres) ;;
    *) echo "bench-issuance.sh: --store is sled or postgres, not $STORE" >&2; exit 2 ;;
esac
if [[ "$REPLICAS" -gt 1 && "$STORE" != postgres ]]; then
    echo "bench-issuance.sh: --replicas $REPLICAS needs --store postgres (replicas share one PostgreSQL store)" >&2
    exit 2
fi

echo "== building runtrust and runtrust-loadgen (release)" >&2
cargo build --release --quiet -p runtrust --bin runtrust -p runtrust-loadgen --bin runtrust-loadgen >&2
R="${BENCH_RUNTRUST:-$PWD/target/release/runtrust}"
[[ -x "$R" ]] || { echo "bench-issuance.sh: $R is not an executable" >&2; exit 2; }
LG="$PWD/target/release/runtrust-loadgen"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-bench-issuance.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${PG_DIR:-}" ]]; then
        RUNTRUST_PG_DIR="$PG_DIR" scripts/pg.sh stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$LG" ek-ca --out "$WORK/ekca" >/dev/null
INIT=(--data-dir "$WORK/service" --listen 127.0.0.1:0 --ek-ca "$WORK/ekca/ek-ca.pem")
if [[ "$STORE" == postgres ]]; then
    # A throwaway cluster on a loopback port (scripts/pg.sh), fsync on, like production; in a directory of its
    # own, which the postgres user can reach (WORK is private).
    PG_DIR="$(mktemp -d /tmp/runtrust-bench-pg.XXXXXX)"
    URL="$(RUNTRUST_PG_DIR="$PG_DIR" scripts/pg.sh start)"
    INIT+=(--store "$URL")
fi
"$R" init "${INIT[@]}" >/dev/null
SERVERS=()
# Replica k serves a copy of the data directory (docs/design.md §15: the same config and keys) on its own port.
for k in $(seq "$REPLICAS"); do
    data="$WORK/service"
    if [[ "$k" -gt 1 ]]; then
        data="$WORK/replica-$k"
        cp -a "$WORK/service" "$data"
    fi
    # The service logs as it would in production (info: a line per token), to a file.
    "$R" serve --data-dir "$data" --listen 127.0.0.1:0 >"$WORK/serve-$k.out" 2>"$WORK/serve-$k.log" &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do
        grep -q "serving on" "$WORK/serve-$k.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/serve-$k.log" >&2; echo "bench-issuance.sh: serve exited" >&2; exit 1; }
        sleep 0.05
    done
    url="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve-$k.out")"
    [[ -n "$url" ]] || { cat "$WORK/serve-$k.log" >&2; echo "bench-issuance.sh: serve did not start" >&2; exit 1; }
    SERVERS+=("$url")
done
SERVER="${SERVERS[0]}"
SERVE_PID="${PIDS[0]}"
CA="$WORK/service/tls/ca.pem"
ADMIN="$WORK/service/admin.credential"
echo "== service ${SERVERS[*]} ($STORE store, $REPLICAS replica(s)), $(nproc) cores" >&2

# The policy the simulated hosts' golden PCR values satisfy, selecting them by the tag their attester
# principals confer.
TAG="bench=issuance"
"$LG" policy --id bench-issuance --tag "$TAG" --scope 'bench/*' --pcrs 0-7 --out "$WORK/policy.toml"
"$R" --server "$SERVER" --server-ca "$CA" --credential "$ADMIN" policy apply "$WORK/policy.toml" >&2

echo "== $HOSTS hosts, concurrency $CONCURRENCY, ${SECONDS_}s" >&2
STORE_DIR=()
[[ "$STORE" == sled ]] && STORE_DIR=(--store-dir "$WORK/service/store")
# With replicas, the process figures (CPU, writes per token) are the first replica's.
LINE="$("$LG" run --server "$(IFS=,; echo "${SERVERS[*]}")" --server-ca "$CA" --admin-credential "$ADMIN" \
    --ek-ca "$WORK/ekca" --hosts "$HOSTS" --concurrency "$CONCURRENCY" --seconds "$SECONDS_" --tag "$TAG" \
    --scope bench/issue "${STORE_DIR[@]}" --service-pid "$SERVE_PID")"

for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done
PIDS=()
if grep -qiE "panic|error" "$WORK"/serve-*.log; then
    echo "== service logs (errors):" >&2
    grep -iE "panic|error" "$WORK"/serve-*.log | head -n 5 >&2
fi
echo "$LINE"
