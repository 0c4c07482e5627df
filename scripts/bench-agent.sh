#!/usr/bin/env bash
# The host agent (docs/design.md §14), side by side in one run on one swtpm, with the service on this
# machine (TLS on loopback):
#
#   1. `runtrust exec -- true` through the agent vs one `tpm2_quote` process (persistent AK, 8 PCRs),
#      interleaved run by run; medians and their ratio (issue 12 target: ≤ 1.0×).
#   2. With `runtrust agent --max-quotes-per-second 5`: verified tokens per second for one host, C workers
#      each looping `token request` (challenge, quote through the agent, issuance) + `token verify`
#      (offline, cached keys) for D seconds; TPM quotes made and the largest batch from `agent status`.
#   3. The same host and agent without a process per token: `runtrust-loadgen agent`, C requests at once
#      over keep-alive HTTPS, each quote through the agent's socket and each token verified in process
#      (issue 12 target: >= 100 verified tokens/s at --max-quotes-per-second 5).
#
#   scripts/bench-agent.sh [N] [C] [D]    # N exec/quote pairs (30), C workers (48), D seconds (10)
#   BENCH_PROFILE=debug scripts/bench-agent.sh   # use target/debug (dependencies are optimized there too)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${1:-30}" C="${2:-48}" D="${3:-10}"
PROFILE="${BENCH_PROFILE:-release}"
if [[ "$PROFILE" == release ]]; then
    cargo build --release --quiet --locked -p runtrust --bin runtrust -p runtrust-loadgen --bin runtrust-loadgen
else
    cargo build --quiet --locked -p runtrust --bin runtrust -p runtrust-loadgen --bin runtrust-loadgen
fi
R="$PWD/target/$PROFILE/runtrust"
LOADGEN="$PWD/target/$PROFILE/runtrust-loadgen"
for t in tpm2_createek tpm2_createak tpm2_evictcontrol tpm2_quote tpm2_flushcontext bc; do
    command -v "$t" >/dev/null || { echo "bench-agent.sh: $t not found (scripts/install-deps.sh)" >&2; exit 1; }
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-bench-agent.XXXXXX")"
export RUNTRUST_SWTPM_DIR="$WORK/swtpm" RUNTRUST_STATE_DIR="$WORK/host" RUNTRUST_AGENT="$WORK/run/agent.sock"
SERVE_PID="" AGENT_PID=""
stop_agent() {
    if [[ -n "$AGENT_PID" ]]; then kill "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; fi
    AGENT_PID=""
}
cleanup() {
    stop_agent
    if [[ -n "$SERVE_PID" ]]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
    scripts/swtpm.sh stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
start_agent() { # agent flags...
    "$R" agent "$@" >"$WORK/agent.out" 2>"$WORK/agent.log" &
    AGENT_PID=$!
    for _ in $(seq 300); do grep -q "listening" "$WORK/agent.out" 2>/dev/null && return; sleep 0.1; done
    echo "the agent did not start: $(cat "$WORK/agent.log")" >&2; exit 1
}

eval "$(scripts/swtpm.sh start)"
"$R" init --data-dir "$WORK/service" --listen 127.0.0.1:0 \
    --ek-ca "$RUNTRUST_SWTPM_CA" --ek-ca "$RUNTRUST_SWTPM_INTERMEDIATE" >/dev/null
# C workers of one host hold C challenges at once: a host that bursts through its agent raises the
# per-principal cap (docs/design.md §14, §16).
sed -i "s/^max_challenges_per_principal = .*/max_challenges_per_principal = $((C * 2))/" "$WORK/service/config.toml"
grep -q "^max_challenges_per_principal = $((C * 2))" "$WORK/service/config.toml" \
    || { echo "bench-agent.sh: config.toml has no limits.max_challenges_per_principal" >&2; exit 1; }
"$R" serve --data-dir "$WORK/service" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
export RUNTRUST_SERVER="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve.out")"
export RUNTRUST_SERVER_CA="$WORK/service/tls/ca.pem"
ADMIN="$WORK/service/admin.credential"
"$R" --credential "$ADMIN" principal add bench-host --role attester --tag env=bench | tail -n 1 >"$WORK/host.credential"
export RUNTRUST_CREDENTIAL_FILE="$WORK/host.credential"

# tpm2-tools' fastest quote: a persistent AK (no key load), as tpm2_quote is usually run on a host.
( cd "$WORK" && tpm2_createek -G rsa -c ek.ctx >/dev/null && tpm2_flushcontext -t \
    && tpm2_createak -C ek.ctx -c ak.ctx -G rsa -g sha256 -s rsassa >/dev/null && tpm2_flushcontext -t \
    && tpm2_evictcontrol -c ak.ctx 0x81000100 >/dev/null && tpm2_flushcontext -t ) >/dev/null 2>&1 \
    || { echo "bench-agent.sh: making the tpm2-tools AK failed" >&2; exit 1; }

start_agent
"$R" enroll --tag env=bench >/dev/null
"$R" policy capture --id bench --pcrs 0-7 --tag env=bench --scope 'bench/*' --out "$WORK/policy.toml" 2>/dev/null
"$R" --credential "$ADMIN" policy apply "$WORK/policy.toml" >/dev/null
"$R" token request --scope 'bench/*' --audience gw --ttl 10m --out "$WORK/token" >/dev/null
"$R" token verify "$WORK/token" --audience gw >/dev/null   # caches the issuer keys

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%d\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: >"$WORK/quote.ns"; : >"$WORK/exec.ns"
for i in $(seq "$N"); do
    nonce="$(printf '%064x' "$i")"
    t0=$(now); tpm2_quote -c 0x81000100 -l sha256:0,1,2,3,4,5,6,7 -q "$nonce" >/dev/null; t1=$(now)
    echo $((t1 - t0)) >>"$WORK/quote.ns"
    t0=$(now); "$R" exec --token "$WORK/token" --scope bench/x --audience gw -- true; t1=$(now)
    echo $((t1 - t0)) >>"$WORK/exec.ns"
done
q=$(median <"$WORK/quote.ns"); e=$(median <"$WORK/exec.ns")
printf 'tpm2_quote (persistent AK, sha256:0-7), median of %d    %8.1f ms\n' "$N" "$(echo "$q / 1000000" | bc -l)"
printf 'runtrust exec -- true through the agent, median of %d %8.1f ms\n' "$N" "$(echo "$e / 1000000" | bc -l)"
printf 'ratio exec/tpm2_quote                                  %8.2fx\n' "$(echo "$e / $q" | bc -l)"
"$R" agent status | sed 's/^/  agent: /'
stop_agent

start_agent --max-quotes-per-second 5
before_quotes=$("$R" --json agent status | sed -n 's/^ *"quotes": \([0-9]*\).*/\1/p')
worker() { # id
    local n=0 end=$(( $(now) + D * 1000000000 ))
    while (( $(now) < end )); do
        if "$R" token request --scope bench/x --audience gw --out "$WORK/w$1.token" >/dev/null 2>>"$WORK/w$1.err" \
            && "$R" token verify "$WORK/w$1.token" --audience gw --scope bench/x >/dev/null 2>>"$WORK/w$1.err"; then
            n=$((n + 1))
        fi
    done
    echo "$n" >"$WORK/w$1.count"
}
t0=$(now)
pids=()
for w in $(seq "$C"); do worker "$w" & pids+=($!); done
wait "${pids[@]}"
t1=$(now)
total=$(cat "$WORK"/w*.count | paste -sd+ | bc)
errors=$(cat "$WORK"/w*.err | wc -l)
secs=$(echo "($t1 - $t0) / 1000000000" | bc -l)
status="$("$R" --json agent status)"
quotes=$(( $(sed -n 's/^ *"quotes": \([0-9]*\).*/\1/p' <<<"$status") - before_quotes ))
largest=$(sed -n 's/^ *"largest_batch": \([0-9]*\).*/\1/p' <<<"$status")
printf 'verified tokens, %d workers, --max-quotes-per-second 5: %d in %.1f s = %.1f/s (%d TPM quotes, largest batch %d, %d error lines)\n' \
    "$C" "$total" "$secs" "$(echo "$total / $secs" | bc -l)" "$quotes" "$largest" "$errors"
if ((errors)); then
    echo "  errors, by kind:"
    cat "$WORK"/w*.err | sed -E 's/[0-9a-f]{16,}/…/g; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -5 | sed 's/^/  /'
fi

# 3. In process: the agent's and the service's own ceiling for one host, without a CLI process per token.
# A fresh agent, so that its counters are this run's.
stop_agent
start_agent --max-quotes-per-second 5
"$LOADGEN" agent --server "$RUNTRUST_SERVER" --server-ca "$RUNTRUST_SERVER_CA" --credential "$RUNTRUST_CREDENTIAL_FILE" \
    --agent "$RUNTRUST_AGENT" --scope bench/x --audience gw --concurrency "$C" --seconds "$D" 2>"$WORK/loadgen.err" \
    >"$WORK/loadgen.out" || { cat "$WORK/loadgen.err" >&2; exit 1; }
sed 's/^/  loadgen: /' "$WORK/loadgen.err"
printf 'in process through the agent, %d at once, --max-quotes-per-second 5: %s\n' "$C" "$(cat "$WORK/loadgen.out")"
