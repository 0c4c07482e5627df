#!/usr/bin/env bash
# runtrust's main job in one command, on a simulated TPM:
#   a service on the embedded store, a host enrolled with its TPM, a policy captured from that golden host,
#   an execution token, a command run through the gated `exec`, the same command refused after the token
#   is revoked, then a PCR change and the precise denial that follows, and the audit log verified.
# It installs what it needs, and leaves nothing running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# refused CODE FILE CMD...: CMD must exit CODE and FILE must not exist afterwards.
refused() {
    local want="$1" file="$2" rc=0
    shift 2
    printf '$ %s\n' "$*"
    "$@" || rc=$?
    echo "exit code $rc"
    if [[ $rc -ne $want || -e "$file" ]]; then
        echo "quickstart: expected exit $want and no $file" >&2
        exit 1
    fi
}

scripts/install-deps.sh
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
bold "building runtrust (release)"
cargo build --release --quiet --bin runtrust
R="$PWD/target/release/runtrust"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-quickstart.XXXXXX")"
export RUNTRUST_SWTPM_DIR="$WORK/swtpm"
SERVE_PID=""
cleanup() {
    local rc=$?
    [[ -n "$SERVE_PID" ]] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null || true
    scripts/swtpm.sh stop 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

bold "a simulated TPM (swtpm) with an EK certificate from its own CA"
eval "$(scripts/swtpm.sh start)"
export RUNTRUST_STATE_DIR="$WORK/host"
run "$R" tpm info
# Something for the golden state to pin besides the (empty) firmware PCRs of a simulator.
run "$R" tpm extend --pcr 16 --data "quickstart: trusted application stack v1"

bold "the service: init (keys, TLS, admin credential) and serve"
run "$R" init --data-dir "$WORK/service" --listen 127.0.0.1:0 \
    --ek-ca "$RUNTRUST_SWTPM_CA" --ek-ca "$RUNTRUST_SWTPM_INTERMEDIATE"
"$R" serve --data-dir "$WORK/service" >"$WORK/serve.out" 2>"$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do grep -q "serving on" "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^runtrust: serving on //p' "$WORK/serve.out")"
[[ -n "$URL" ]] || { cat "$WORK/serve.log" >&2; exit 1; }
echo "serving on $URL"
export RUNTRUST_SERVER="$URL" RUNTRUST_SERVER_CA="$WORK/service/tls/ca.pem"
ADMIN="$WORK/service/admin.credential"

bold "a principal for this host (conferring its tag), and enrollment (EK certificate, credential activation)"
"$R" --credential "$ADMIN" principal add quickstart-host --role attester --tag env=quickstart | tail -n 1 >"$WORK/host.credential"
chmod 600 "$WORK/host.credential"
export RUNTRUST_CREDENTIAL_FILE="$WORK/host.credential"
run "$R" enroll --tag env=quickstart

bold "a policy from the golden host's PCRs, applied"
run "$R" policy capture --id quickstart --pcrs 0-7,16 --tag env=quickstart --scope 'deploy/*' --out "$WORK/policy.toml"
cat "$WORK/policy.toml"
run "$R" policy check "$WORK/policy.toml"
run "$R" --credential "$ADMIN" policy apply "$WORK/policy.toml"

bold "an execution token: challenge, TPM quote, verification, COSE_Sign1"
run "$R" token request --scope deploy/web --audience gateway.example --ttl 5m --out "$WORK/token.cose"
run "$R" token inspect "$WORK/token.cose"
run "$R" token verify "$WORK/token.cose" --audience gateway.example --scope deploy/web

bold "governed execution: runtrust exec re-proves the binding with a fresh quote, checks online, then runs"
run "$R" exec --token "$WORK/token.cose" --scope deploy/web --audience gateway.example -- \
    sh -c 'echo "hello from a command runtrust allowed"; touch "$0"' "$WORK/ran-1"
[[ -e "$WORK/ran-1" ]] || { echo "quickstart: the allowed command did not run" >&2; exit 1; }

bold "the token is revoked: the same command is refused (exit 125) and never starts"
CTI="$("$R" --json token inspect "$WORK/token.cose" | sed -n 's/^ *"cti": "\([0-9a-f]*\)".*/\1/p')"
run "$R" --credential "$ADMIN" revoke token "$CTI" --reason "quickstart: demonstrating revocation"
refused 125 "$WORK/ran-2" \
    "$R" exec --token "$WORK/token.cose" --scope deploy/web --audience gateway.example -- touch "$WORK/ran-2"
run "$R" --credential "$ADMIN" lineage "$CTI"

bold "the platform changes: PCR 16 is extended, and the next request is refused"
run "$R" tpm extend --pcr 16 --data "quickstart: something unexpected"
refused 3 "$WORK/token2.cose" \
    "$R" token request --scope deploy/web --audience gateway.example --out "$WORK/token2.cose"

bold "the audit log: the last entries, a signed checkpoint, and the whole Merkle tree recomputed and verified"
"$R" --credential "$ADMIN" audit tail -n 8
run "$R" --credential "$ADMIN" audit checkpoint --out "$WORK/checkpoint.txt"
run "$R" --credential "$ADMIN" audit verify --checkpoint "$WORK/checkpoint.txt"
bold "done: everything this script started is stopped and its files removed"
