#!/usr/bin/env bash
# What the execution gateway costs: `runtrust exec -- true` against `true`, on swtpm, with the service on
# this machine (TLS on loopback). Each exec is a full run: token verified offline, a fresh TPM quote by the
# token's cnf AK (the runtime binding), the online check (revocation, durable start record), the command,
# and the durable end report. Also times `token request` (challenge, quote, issuance) for comparison.
#
#   scripts/bench-exec.sh [N]      # N runs of each (default 20); needs what quickstart.sh installs
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-20}"
cargo build --release --quiet --bin runtrust
R="$PWD/target/release/runtrust"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-bench-exec.XXXXXX")"
export RUNTRUST_SWTPM_DIR="$WORK/swtpm" RUNTRUST_STATE_DIR="$WORK/host"
SERVE_PID=""
cleanup() {
    [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
    scripts/swtpm.sh stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(scripts/swtpm.sh start)"
"$R" init --data-dir "$WORK/service" --listen 127.0.0.1:0 \
    --ek-ca "$RUNTRUST_SWTPM_CA" --ek-ca "$RUNTRUST_SWTPM_INTERMEDIATE" >/dev/null
"$R" serve --data-dir "$WORK/service" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
export RUNTRUST_SERVER="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve.out")"
export RUNTRUST_SERVER_CA="$WORK/service/tls/ca.pem"
ADMIN="$WORK/service/admin.credential"
"$R" --credential "$ADMIN" principal add bench-host --role attester --tag env=bench | tail -n 1 >"$WORK/host.credential"
export RUNTRUST_CREDENTIAL_FILE="$WORK/host.credential"
"$R" enroll --tag env=bench >/dev/null
"$R" policy capture --id bench --pcrs 0-7 --tag env=bench --scope 'bench/*' --out "$WORK/policy.toml" 2>/dev/null
"$R" --credential "$ADMIN" policy apply "$WORK/policy.toml" >/dev/null
"$R" token request --scope 'bench/*' --audience gw --ttl 10m --out "$WORK/token" >/dev/null

ms() { date +%s%N; }
time_n() { # label, command...
    local label="$1"; shift
    local start end
    start=$(ms)
    for _ in $(seq "$N"); do "$@" >/dev/null; done
    end=$(ms)
    printf '%-52s %8.1f ms per run (%d runs)\n' "$label" "$(echo "($end - $start) / 1000000 / $N" | bc -l)" "$N"
}
time_n "true (baseline)" true
time_n "runtrust tpm quote (open TPM, load AK, quote)" "$R" tpm quote --nonce 00112233 --pcrs 0-7 --out "$WORK/q"
time_n "runtrust token verify (offline, cached keys)" "$R" token verify "$WORK/token" --audience gw --scope bench/x
time_n "runtrust exec -- true (verify, quote, online, end)" "$R" exec --token "$WORK/token" --scope bench/x --audience gw -- true
time_n "runtrust token request (challenge, quote, issue)" "$R" token request --scope bench/x --audience gw --out "$WORK/t2"
