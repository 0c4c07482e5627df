#!/usr/bin/env bash
# `runtrust exec -- true` on a slow TPM, with and without the agent: swtpm behind the slow-TPM proxy (swtpm-tests'
# `slow-tpm` binary), which holds TPM2_CreatePrimary and TPM2_Quote as long as a discrete chip takes (3 s and
# 200 ms by default) and runs one command at a time. Measured side by side in one run, on the same TPM, token
# and service:
#
#   recreated   no EK persisted: every exec creates the EK primary again (runtrust before issue 12)
#   persisted   the EK persisted at 0x81010001 (`runtrust tpm persist-ek`): loaded, never created
#   agent       the host agent on the slow TPM (it loaded the keys once; each exec costs one quote)
#   direct      persisted EK, swtpm without the proxy (what swtpm alone costs, for reference)
#
#   scripts/bench-slow-tpm.sh [N]   # N timed runs per variant (default 10), after one warm-up run each
#   CREATE_PRIMARY_MS=3000 QUOTE_MS=200 scripts/bench-slow-tpm.sh   # the delays (these are the defaults)
#
# Prints median, mean, min and max per variant, and the TPM commands the proxy saw per exec.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-10}"
CREATE_PRIMARY_MS="${CREATE_PRIMARY_MS:-3000}"
QUOTE_MS="${QUOTE_MS:-200}"
cargo build --release --quiet --locked --bin runtrust
cargo build --release --quiet --locked -p swtpm-tests --bin slow-tpm
R="$PWD/target/release/runtrust"
SLOW="$PWD/target/release/slow-tpm"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-bench-slow.XXXXXX")"
export RUNTRUST_SWTPM_DIR="$WORK/swtpm" RUNTRUST_STATE_DIR="$WORK/host"
SERVE_PID="" PROXY_PID="" AGENT_PID=""
# No agent unless the agent variant starts one (a system agent at the default socket never joins in).
export RUNTRUST_AGENT="$WORK/no-agent.sock"
cleanup() {
    [[ -n "$AGENT_PID" ]] && kill "$AGENT_PID" 2>/dev/null || true
    [[ -n "$PROXY_PID" ]] && kill "$PROXY_PID" 2>/dev/null || true
    [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
    scripts/swtpm.sh stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
eval "$(scripts/swtpm.sh start 2>/dev/null)"
DIRECT_TCTI="$RUNTRUST_TCTI"
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
"$R" token request --scope 'bench/*' --audience gw --ttl 15m --out "$WORK/token" >/dev/null

# swtpm_setup persisted the EK; the "recreated" variant needs it gone.
tpm2_evictcontrol -C o -c 0x81010001 >/dev/null

"$SLOW" --upstream "${DIRECT_TCTI##*port=}" --delay "CreatePrimary=$CREATE_PRIMARY_MS" --delay "Quote=$QUOTE_MS" \
    --counts "$WORK/counts" >"$WORK/proxy.out" 2>"$WORK/proxy.err" &
PROXY_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/proxy.out" ]] && break; sleep 0.05; done
SLOW_TCTI="$(head -n 1 "$WORK/proxy.out")"

count() { awk -v c="$1" '$1 == c { print $2 }' "$WORK/counts" 2>/dev/null || true; }
exec_true() { RUNTRUST_TCTI="$1" "$R" exec --token "$WORK/token" --scope bench/x --audience gw -- true; }

# Runs exec -- true N times over TCTI $2 and prints one result line labelled $1.
bench() {
    local label="$1" tcti="$2" times=() start end cp0 q0 cp1 q1
    exec_true "$tcti" # warm-up: issuer keys cached, AK loaded once from disk cache
    cp0="$(count 0x131)" q0="$(count 0x158)"
    for _ in $(seq "$N"); do
        start=$(date +%s%N)
        exec_true "$tcti"
        end=$(date +%s%N)
        times+=($(((end - start) / 1000)))
    done
    cp1="$(count 0x131)" q1="$(count 0x158)"
    printf '%s\n' "${times[@]}" | sort -n | awk -v label="$label" -v n="$N" \
        -v cp="$(((${cp1:-0} - ${cp0:-0}) * 10 / N))" -v q="$(((${q1:-0} - ${q0:-0}) * 10 / N))" '
        { t[NR] = $1 / 1000; sum += $1 / 1000 }
        END {
            med = (n % 2) ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
            printf "%-12s median %7.0f ms  mean %7.0f ms  min %7.0f ms  max %7.0f ms  (%d runs; per exec: CreatePrimary %.1f, Quote %.1f)\n",
                label, med, sum / n, t[1], t[n], n, cp / 10, q / 10
        }'
}

echo "exec -- true; slow TPM: CreatePrimary ${CREATE_PRIMARY_MS} ms, Quote ${QUOTE_MS} ms; no agent"
bench recreated "$SLOW_TCTI"
"$R" --tcti "$DIRECT_TCTI" tpm persist-ek >/dev/null
bench persisted "$SLOW_TCTI"
echo "agent        (runtrust agent on the slow TPM, --batch-window 0; exec asks it for the quote)"
RUNTRUST_AGENT="$WORK/run/agent.sock" "$R" --tcti "$SLOW_TCTI" agent --batch-window 0 >/dev/null 2>"$WORK/agent.log" &
AGENT_PID=$!
for _ in $(seq 300); do [[ -S "$WORK/run/agent.sock" ]] && break; sleep 0.05; done
[[ -S "$WORK/run/agent.sock" ]] || { echo "bench-slow-tpm.sh: the agent did not start:" >&2; cat "$WORK/agent.log" >&2; exit 1; }
RUNTRUST_AGENT="$WORK/run/agent.sock" bench agent "$SLOW_TCTI"
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
echo "direct       (swtpm without the proxy, persisted EK; the proxy does not see these)"
bench direct "$DIRECT_TCTI"
