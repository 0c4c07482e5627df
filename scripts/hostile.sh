#!/usr/bin/env bash
# Replays the hostile inputs of issue 11 against a throwaway runtrust service on loopback and prints what
# held (docs/design.md §12, §16):
#   1. an unauthenticated flood (2,000 requests over the four deciding routes) leaves the audit log as it was,
#      and /metrics counts it;
#   2. slow connections — silent TCP, idle after the TLS handshake, headers dripping, a body dripping — are
#      closed within the configured timeouts while a legitimate client is served, also with dozens at once;
#   3. connections over the cap are closed on arrival;
#   4. a store restored from an older copy is refused at start, with a message that says how to recover.
# Exits non-zero if anything did not hold. Loopback only; no TPM needed; about a minute (after the build).
# Uses curl and openssl s_client (Debian: apt-get install curl openssl). RUNTRUST_BIN picks the binary.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

for tool in curl openssl; do
    if ! command -v "$tool" >/dev/null; then
        echo "hostile: installing $tool" >&2
        { apt-get update -qq && apt-get install -y -qq "$tool"; } >/dev/null 2>&1 || {
            echo "hostile: $tool is missing: apt-get install $tool" >&2
            exit 2
        }
    fi
done
if [[ -z "${RUNTRUST_BIN:-}" ]]; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --quiet --bin runtrust || exit 2
    RUNTRUST_BIN="$PWD/target/debug/runtrust"
fi
R="$RUNTRUST_BIN"

# Short timeouts so the replay is quick; the fleet defaults are in docs/config.md.
HANDSHAKE=2 HEADERS=3 BODY=3 IDLE=4 CAP=64
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-hostile.XXXXXX")"
D="$WORK/data"
SERVE_PID=""
PIDS=()
FAILED=0
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

held() { printf '  held:   %s\n' "$*"; }
failed() { printf '  FAILED: %s\n' "$*"; FAILED=1; }
section() { printf '\n== %s\n' "$*"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# within LIMIT SECONDS: whether SECONDS <= LIMIT
within() { awk -v l="$1" -v s="$2" 'BEGIN { exit !(s <= l) }'; }

start() {
    "$R" serve --data-dir "$D" "$@" >"$WORK/serve.out" 2>"$WORK/serve.log" &
    SERVE_PID=$!
    for _ in $(seq 100); do grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
    URL="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve.out")"
    [[ -n "$URL" ]] || { cat "$WORK/serve.log" >&2; echo "hostile: the service did not start" >&2; exit 2; }
    PORT="${URL##*:}"
    export RUNTRUST_SERVER="$URL"
}
stop() { kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; SERVE_PID=""; }
curl_() { curl -s --cacert "$D/tls/ca.pem" --connect-timeout 5 --max-time 20 "$@"; }
metric() { curl_ "$URL/metrics" | awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'; }
audit_size() { "$R" --credential "$D/admin.credential" --json audit tail --all | wc -l; }
# A TLS connection that stays open until the service closes it (-quiet ignores the end of stdin).
tls() { timeout 30 openssl s_client -connect "127.0.0.1:$PORT" -servername localhost -CAfile "$D/tls/ca.pem" -quiet 2>/dev/null; }
legit() { [[ "$(curl_ -o /dev/null -w '%{http_code}' "$URL/healthz")" == 200 ]]; }

"$R" init --data-dir "$D" --listen 127.0.0.1:0 >/dev/null || exit 2
sed -i -e "s/^tls_handshake_timeout_secs = .*/tls_handshake_timeout_secs = $HANDSHAKE/" \
    -e "s/^header_timeout_secs = .*/header_timeout_secs = $HEADERS/" -e "s/^body_timeout_secs = .*/body_timeout_secs = $BODY/" \
    -e "s/^idle_timeout_secs = .*/idle_timeout_secs = $IDLE/" -e "s/^max_connections = .*/max_connections = $CAP/" "$D/config.toml"
grep -q "^max_connections = $CAP$" "$D/config.toml" || { echo "hostile: no [limits] keys in config.toml" >&2; exit 2; }
export RUNTRUST_SERVER_CA="$D/tls/ca.pem" RUNTRUST_STATE_DIR="$WORK/client"
start
echo "service on $URL (timeouts: handshake ${HANDSHAKE}s, headers ${HEADERS}s, body ${BODY}s, idle ${IDLE}s; cap $CAP)"

section "1. unauthenticated flood: 2,000 requests, no durable write"
before="$(audit_size)"
t0="$(now)"
codes="$(for route in enroll challenge tokens executions; do
    curl_ --parallel --parallel-max 16 -o /dev/null -w '%{http_code}\n' -X POST \
        -H 'content-type: application/json' -d '{}' "$URL/v1/$route?n=[1-500]"
done | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
t1="$(now)"
after="$(audit_size)"
echo "  answers: $codes in $(elapsed "$t0" "$t1") s"
[[ "$codes" == " 2000 401;" ]] && held "2,000 unauthenticated requests, every one refused with 401" \
    || failed "answers were not 2,000 × 401: $codes"
[[ "$before" == "$after" ]] && held "audit log size unchanged ($before entries)" \
    || failed "the audit log grew from $before to $after entries"
counted=0
for route in enroll challenge tokens executions; do
    n="$(metric "runtrust_unauthenticated_total{route=\"/v1/$route\"}")"
    counted=$((counted + n))
done
[[ "$counted" -ge 2000 ]] && held "/metrics counts them: runtrust_unauthenticated_total sums to $counted" \
    || failed "/metrics counted $counted unauthenticated requests"

section "2. slow connections closed within the timeouts while a legitimate client is served"
# time_until_closed NAME CMD...: runs CMD (which returns when the service closes the connection) in the
# background; writes its duration to $WORK/NAME.
time_until_closed() {
    local name="$1"
    shift
    ( t0="$(now)"; "$@" >"$WORK/$name.out" 2>&1; elapsed "$t0" "$(now)" >"$WORK/$name.time" ) &
    PIDS+=($!)
}
silent_tcp() { exec 3<>"/dev/tcp/127.0.0.1/$PORT" && timeout 30 cat <&3 >/dev/null; }
idle_tls() { tls </dev/null; }
drip_headers() {
    { printf 'GET /healthz HTTP/1.1\r\nhost: localhost\r\n'; for _ in $(seq 60); do printf 'x'; sleep 0.5; done; } | tls
}
drip_body() {
    { printf 'POST /v1/policies HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer %s\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n' \
        "$(cat "$D/admin.credential")"; for _ in $(seq 60); do printf ' '; sleep 0.5; done; } | tls
}
time_until_closed silent silent_tcp
time_until_closed idle idle_tls
time_until_closed headers drip_headers
time_until_closed body drip_body
# Dozens at once: 20 idle and 20 dripping headers.
for i in $(seq 20); do time_until_closed "idle-$i" idle_tls; time_until_closed "drip-$i" drip_headers; done
sleep 1
served=0
for _ in $(seq 10); do legit && served=$((served + 1)); sleep 0.5; done
[[ "$served" == 10 ]] && held "a legitimate client was served 10 of 10 times meanwhile" \
    || failed "a legitimate client was served $served of 10 times"
wait "${PIDS[@]}" 2>/dev/null
PIDS=()
check() { # check NAME LIMIT WHAT
    local t
    t="$(cat "$WORK/$1.time" 2>/dev/null || echo 999)"
    if within "$2" "$t"; then held "$3: closed after ${t} s (limit ${2} s)"; else failed "$3: closed after ${t} s (limit ${2} s)"; fi
}
check silent "$((HANDSHAKE + 2))" "silent TCP, no TLS handshake"
check idle "$((IDLE + 2))" "TLS, then idle"
check headers "$((HEADERS + 2))" "headers dripping a byte every 0.5 s"
check body "$((BODY + 2))" "body dripping a byte every 0.5 s"
grep -q "HTTP/1.1 408" "$WORK/body.out" && held "the dripping body was answered 408" || failed "no 408 for the dripping body"
late=0
for i in $(seq 20); do
    for k in idle drip; do within "$((IDLE + 3))" "$(cat "$WORK/$k-$i.time" 2>/dev/null || echo 999)" || late=$((late + 1)); done
done
[[ "$late" == 0 ]] && held "40 concurrent idle and dripping connections all closed in time" \
    || failed "$late of 40 concurrent slow connections were not closed in time"
for phase in handshake idle headers body; do
    echo "  runtrust_connections_timed_out_total{phase=\"$phase\"} $(metric "runtrust_connections_timed_out_total{phase=\"$phase\"}")"
done
open_now="$(metric runtrust_connections_open)"
[[ "$open_now" -le 1 ]] && held "no slow connection is still held (connections open: $open_now)" \
    || failed "$open_now connections still open"

section "3. the connection cap"
fds=()
for _ in $(seq $((CAP + 16))); do exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" && fds+=("$fd"); done
sleep 1
# /metrics is one more connection: read it once the silent ones are gone (and poll: a loaded machine is slow).
for fd in "${fds[@]}"; do exec {fd}>&-; done
refused=0
for _ in $(seq 40); do
    refused="$(metric runtrust_connections_refused_total)"
    [[ "$refused" -ge 16 ]] && break
    sleep 0.25
done
[[ "$refused" -ge 16 ]] && held "$((CAP + 16)) silent connections: $refused closed on arrival over the cap of $CAP" \
    || failed "only $refused connections refused over the cap"
sleep "$((HANDSHAKE + 1))"
legit && held "after the flood: a legitimate client is served again" \
    || failed "a legitimate client was not served after the cap emptied"

section "4. a store restored from an older copy is refused at start"
hex32() { printf '%02x' "$1" | awk '{ s = ""; for (i = 0; i < 32; i++) s = s $0; print s }'; }
revoke() { "$R" --credential "$D/admin.credential" revoke policy "$(hex32 "$1")" --reason hostile >/dev/null; }
revoke 1 || failed "revoke failed"
stop
cp -a "$D/store" "$WORK/store-copy"
start
revoke 2 && revoke 3 || failed "revoke failed"
stop
rm -rf "$D/store" && cp -a "$WORK/store-copy" "$D/store"
if timeout 30 "$R" serve --data-dir "$D" >"$WORK/refused.out" 2>"$WORK/refused.log"; then
    failed "serve ran on the rolled-back store"
elif grep -q "serving on" "$WORK/refused.out"; then
    failed "serve started on the rolled-back store"
elif grep -q "refusing to start" "$WORK/refused.log" && grep -q -- "--accept-store-rollback" "$WORK/refused.log"; then
    held "serve refused the rolled-back store:"
    sed -n 's/^runtrust: error: /    /p' "$WORK/refused.log" | fold -s -w 110 | sed '2,$s/^/    /'
else
    failed "serve failed without the expected message: $(head -c 400 "$WORK/refused.log")"
fi

echo
if [[ "$FAILED" == 0 ]]; then echo "hostile: everything held"; else echo "hostile: something did not hold"; fi
exit "$FAILED"
