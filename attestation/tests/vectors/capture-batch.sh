#!/usr/bin/env bash
# Regenerate the nonce-batch quote vectors in batch/ (docs/design.md §14) from a fresh swtpm, with
# tpm2-tools: one RSA AK (RSASSA-SHA256) under the RSA EK, PCRs 0..7 extended as capture.sh does (the same
# sha256 values as rsa/pcrs.json), and two quotes over sha256:0-7 whose qualifyingData is a batch root:
#
#   attest, signature          batch of nonces.hex lines 1-3 (n0, n1, n2): root.hex
#   attest-dup, signature-dup  a batch that breaks the rule, holding n0 twice (n0, n1, n0): root-dup.hex
#
# n_i = sha256("runtrust batch nonce i"); leaf = sha256(0x00 ‖ "runtrust nonce batch v1" ‖ n),
# node = sha256(0x01 ‖ left ‖ right) (RFC 9162 §2.1.1), so a root of three is node(node(l0, l1), l2).
#
# Usage: ./capture-batch.sh [OUTDIR]      (OUTDIR defaults to ./batch)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/batch}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
for tool in swtpm swtpm_setup tpm2_createek tpm2_createak tpm2_quote tpm2_checkquote tpm2_pcrread \
            tpm2_pcrextend tpm2_flushcontext sha256sum xxd; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
WORK="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-batch-vectors.XXXXXX")"
WORK="$(cd "$WORK" && pwd)"
SWTPM_PID=""
cleanup() {
    local rc=$?
    [[ -n "$SWTPM_PID" ]] && kill "$SWTPM_PID" 2>/dev/null || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

mkdir -p "$WORK/state"
swtpm_setup --tpm2 --tpmstate "$WORK/state" --pcr-banks sha256 --overwrite >"$WORK/setup.log" 2>&1 \
    || { cat "$WORK/setup.log" >&2; exit 1; }
PORT=""
for _ in $(seq 20); do
    p=$(( 20000 + (RANDOM % 20000) * 2 ))
    if swtpm socket --tpm2 --tpmstate dir="$WORK/state" --server type=tcp,port="$p",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port="$((p + 1))",bindaddr=127.0.0.1 --flags not-need-init,startup-clear \
        --pid file="$WORK/swtpm.pid" --daemon 2>>"$WORK/swtpm.err"; then
        for _ in $(seq 50); do [[ -s "$WORK/swtpm.pid" ]] && break; sleep 0.1; done
        SWTPM_PID="$(cat "$WORK/swtpm.pid")"; PORT="$p"; break
    fi
done
[[ -n "$PORT" ]] || { cat "$WORK/swtpm.err" >&2; exit 1; }
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$PORT"
flush() { tpm2_flushcontext -t >/dev/null 2>&1 || true; tpm2_flushcontext -s >/dev/null 2>&1 || true; }

for i in 0 1 2 3 4 5 6 7; do
    d="$(printf 'runtrust pcr %d' "$i" | sha256sum | cut -d' ' -f1)"
    tpm2_pcrextend "$i:sha256=$d"
    if [[ $i == 1 || $i == 4 ]]; then tpm2_pcrextend "$i:sha256=$d"; fi
done

sha() { xxd -r -p | sha256sum | cut -d' ' -f1; }
leaf() { printf '00%s%s' "$(printf 'runtrust nonce batch v1' | xxd -p | tr -d '\n')" "$1" | sha; }
node() { printf '01%s%s' "$1" "$2" | sha; }
N0="$(printf 'runtrust batch nonce 0' | sha256sum | cut -d' ' -f1)"
N1="$(printf 'runtrust batch nonce 1' | sha256sum | cut -d' ' -f1)"
N2="$(printf 'runtrust batch nonce 2' | sha256sum | cut -d' ' -f1)"
printf '%s\n%s\n%s\n' "$N0" "$N1" "$N2" >"$OUT/nonces.hex"
ROOT="$(node "$(node "$(leaf "$N0")" "$(leaf "$N1")")" "$(leaf "$N2")")"
ROOT_DUP="$(node "$(node "$(leaf "$N0")" "$(leaf "$N1")")" "$(leaf "$N0")")"
printf '%s\n' "$ROOT" >"$OUT/root.hex"
printf '%s\n' "$ROOT_DUP" >"$OUT/root-dup.hex"

SEL="sha256:0,1,2,3,4,5,6,7"
tpm2_createek -G rsa -c "$WORK/ek.ctx" >/dev/null
flush
tpm2_createak -C "$WORK/ek.ctx" -c "$WORK/ak.ctx" -G rsa -g sha256 -s rsassa -u "$OUT/ak.pub" >/dev/null
flush
for v in "":"$ROOT" "-dup":"$ROOT_DUP"; do
    suffix="${v%%:*}" root="${v#*:}"
    tpm2_quote -c "$WORK/ak.ctx" -l "$SEL" -q "$root" -g sha256 --scheme rsassa \
        -m "$OUT/attest$suffix" -s "$OUT/signature$suffix" -o "$WORK/pcrs$suffix.bin" -F serialized >/dev/null
    flush
    tpm2_checkquote -u "$OUT/ak.pub" -m "$OUT/attest$suffix" -s "$OUT/signature$suffix" \
        -f "$WORK/pcrs$suffix.bin" -g sha256 -q "$root" >/dev/null
done
cp "$HERE/rsa/pcrs.json" "$OUT/pcrs.json"
echo "[capture-batch] wrote $OUT" >&2
