#!/usr/bin/env bash
# Issuance under load, end to end: a throwaway service on a loopback port, K simulated attesters (software
# TPMs, runtrust-loadgen) enrolled through the real API, then challenge + token requests from C concurrent
# keep-alive HTTPS clients for S seconds. Everything it starts, it stops.
#
#   scripts/bench-issuance.sh [--store sled|postgres] [--replicas N] [--hosts K] [--concurrency C] [--seconds S]
#
# The report goes to stderr; the last line (stdout) is
#   tokens/s: N floor/s: F ratio: R p99_ms: P errors: E
# where floor/s is the crypto floor measured in the same run (ring: one ECDSA P-256 verify + one Ed25519
# sign per token, single core, times the cores) and ratio = tokens/s / floor/s. docs/performance.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STORE=sled REPLICAS=1 HOSTS=1000 CONCURRENCY=32 SECONDS_=20
usage() { sed -n '2,12s/^# \{0,1\}//p' "$0" >&2; exit "${1:-2}"; }
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
    sled) ;;
    postgres)
        echo "bench-issuance.sh: --store postgres is not supported on this branch yet (the PostgreSQL backend is not in the tree)" >&2
        exit 2 ;;
    *) echo "bench-issuance.sh: --store is sled or postgres, not $STORE" >&2; exit 2 ;;
esac
if [[ "$REPLICAS" -gt 1 ]]; then
    echo "bench-issuance.sh: --replicas $REPLICAS is not supported on this branch yet (replicas share a PostgreSQL store, which is not in the tree)" >&2
    exit 2
fi

echo "== building runtrust and runtrust-loadgen (release)" >&2
cargo build --release --quiet -p runtrust --bin runtrust -p runtrust-loadgen --bin runtrust-loadgen >&2
R="$PWD/target/release/runtrust"
LG="$PWD/target/release/runtrust-loadgen"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-bench-issuance.XXXXXX")"
SERVE_PID=""
cleanup() {
    if [[ -n "$SERVE_PID" ]]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$LG" ek-ca --out "$WORK/ekca" >/dev/null
"$R" init --data-dir "$WORK/service" --listen 127.0.0.1:0 --ek-ca "$WORK/ekca/ek-ca.pem" >/dev/null
# The service logs as it would in production (info: a line per token), to a file.
"$R" serve --data-dir "$WORK/service" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 200); do
    grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; echo "bench-issuance.sh: serve exited" >&2; exit 1; }
    sleep 0.05
done
SERVER="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve.out")"
[[ -n "$SERVER" ]] || { cat "$WORK/serve.log" >&2; echo "bench-issuance.sh: serve did not start" >&2; exit 1; }
CA="$WORK/service/tls/ca.pem"
ADMIN="$WORK/service/admin.credential"
echo "== service $SERVER (sled store, 1 replica), $(nproc) cores" >&2

# The policy the simulated hosts' golden PCR values satisfy, selecting them by the tag their attester
# principals confer.
TAG="bench=issuance"
"$LG" policy --id bench-issuance --tag "$TAG" --scope 'bench/*' --pcrs 0-7 --out "$WORK/policy.toml"
"$R" --server "$SERVER" --server-ca "$CA" --credential "$ADMIN" policy apply "$WORK/policy.toml" >&2

echo "== $HOSTS hosts, concurrency $CONCURRENCY, ${SECONDS_}s" >&2
LINE="$("$LG" run --server "$SERVER" --server-ca "$CA" --admin-credential "$ADMIN" --ek-ca "$WORK/ekca" \
    --hosts "$HOSTS" --concurrency "$CONCURRENCY" --seconds "$SECONDS_" --tag "$TAG" --scope bench/issue \
    --store-dir "$WORK/service/store" --service-pid "$SERVE_PID")"

kill "$SERVE_PID" 2>/dev/null || true
wait "$SERVE_PID" 2>/dev/null || true
SERVE_PID=""
if grep -qiE "panic|error" "$WORK/serve.log"; then
    echo "== service log (errors):" >&2
    grep -iE "panic|error" "$WORK/serve.log" | head -n 5 >&2
fi
echo "$LINE"
