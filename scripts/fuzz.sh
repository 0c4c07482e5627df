#!/usr/bin/env bash
# Runs one cargo-fuzz target of attestation/fuzz with libFuzzer on the stable toolchain (SanitizerCoverage
# instrumentation through -C flags; no nightly, no ASan: Rust's own bounds and overflow checks catch what
# matters here), seeded from the real vectors. Crashes land in attestation/fuzz/artifacts/TARGET/.
#   scripts/fuzz.sh TARGET [RUNS]       TARGET: eventlog_parse | tpm2_parse | quote_verify; RUNS default 10000000
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
target="${1:?usage: scripts/fuzz.sh eventlog_parse|tpm2_parse|quote_verify [RUNS]}"
runs="${2:-10000000}"
fuzz=attestation/fuzz
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/runtrust-fuzz-target}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks --cfg fuzzing"
# --target: RUSTFLAGS then instrument the fuzzed code only, not build scripts and proc macros.
triple="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --quiet --release --manifest-path "$fuzz/Cargo.toml" --bin "$target" --target "$triple"

corpus="$fuzz/corpus/$target"
mkdir -p "$corpus" "$fuzz/artifacts/$target"
vectors=attestation/tests/vectors
case "$target" in
    eventlog_parse)
        for f in ../shared/testdata/eventlogs/*.bin; do [[ -e "$f" ]] && cp "$f" "$corpus/"; done ;;
    tpm2_parse)
        for k in rsa ecc ecc384 rsapss; do
            [[ -d "$vectors/$k" ]] || continue
            { printf '\x00'; cat "$vectors/$k/attest"; } > "$corpus/attest-$k"
            { printf '\x01'; cat "$vectors/$k/signature"; } > "$corpus/signature-$k"
            { printf '\x02'; cat "$vectors/$k/ak.pub"; } > "$corpus/public-$k"
        done
        printf '\x04sha256:0,1,2+sha1:7' > "$corpus/spec" ;;
    quote_verify)
        for k in rsa ecc; do
            n=$(stat -c %s "$vectors/$k/attest")
            { printf "\\x$(printf %02x $((n >> 8)))\\x$(printf %02x $((n & 255)))"; cat "$vectors/$k/attest" "$vectors/$k/signature"; } \
                > "$corpus/quote-$k"
        done ;;
    *) echo "fuzz.sh: unknown target $target" >&2; exit 2 ;;
esac
start=$(date +%s)
"$CARGO_TARGET_DIR/$triple/release/$target" "$corpus" -runs="$runs" -max_len=65536 \
    -artifact_prefix="$fuzz/artifacts/$target/" -print_final_stats=1 2>&1 | tail -n 25
echo "fuzz.sh: $target: $runs runs in $(( $(date +%s) - start )) s"
