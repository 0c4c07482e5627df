#!/usr/bin/env bash
# Every test of the workspace, as `cargo test --workspace` runs them, but the swtpm end-to-end suites
# (swtpm-tests/tests/*.rs) run several binaries at once: they spend most of their time waiting (swtpm, TPM
# key generation, the timeouts they exercise), and one after the other they took most of CI's time.
#
#   scripts/test-binaries.sh            # RUNTRUST_E2E_JOBS suites at once (default 3)
#
# Each suite's output goes to target/e2e-logs/SUITE.log; a failed suite's log is printed in full. Exits 1 if
# any test binary failed (every binary runs either way).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
JOBS="${RUNTRUST_E2E_JOBS:-3}"
CARGO_BIN="$(command -v cargo)"
export CARGO="$CARGO_BIN"

# Build every test binary once, and the runtrust binary the suites run (as swtpm_tests::runtrust_bin does).
artifacts="$(cargo test --workspace --locked --no-run --message-format=json)"
cargo build --quiet --locked -p runtrust --bin runtrust

# "manifest_dir executable" for each test binary (the JSON has no spaces inside these two fields' values
# on any path this repository uses; a path with a space is refused rather than run wrongly).
list="$(grep -E '"profile":\{[^}]*"test":true' <<<"$artifacts" | grep -o '"manifest_path":"[^"]*".*"executable":"[^"]*"' |
    sed -E 's/^"manifest_path":"([^"]*)\/Cargo.toml".*"executable":"([^"]*)"$/\1 \2/')"
if grep -q ' .* ' <<<"$list"; then
    echo "test-binaries.sh: a path with a space; run cargo test --workspace instead" >&2
    exit 1
fi

logs="target/e2e-logs"
rm -rf "$logs" && mkdir -p "$logs"
failed=()
e2e=()
while read -r dir exe; do
    [[ -n "$exe" ]] || continue
    # swtpm-tests' own unit tests (its library and the slow-tpm binary) are quick: run them in line.
    if [[ "$dir" == */swtpm-tests ]] && [[ "$exe" != */swtpm_tests-* ]] && [[ "$exe" != */slow_tpm-* ]]; then
        e2e+=("$dir $exe")
        continue
    fi
    echo "== $(basename "$exe")" >&2
    (cd "$dir" && "$exe") || failed+=("$(basename "$exe")")
done <<<"$list"

echo "== doc tests" >&2
cargo test --workspace --locked --doc || failed+=("doc tests")

echo "== ${#e2e[@]} swtpm end-to-end suites, $JOBS at a time (logs in $logs)" >&2
run_suite() {
    local dir="$1" exe="$2" logs="$3"
    local name
    name="$(basename "$exe" | sed -E 's/-[0-9a-f]{16}$//')"
    local start=$SECONDS
    if (cd "$dir" && "$exe") >"$logs/$name.log" 2>&1; then
        echo "   ok   $name ($((SECONDS - start)) s)" >&2
    else
        echo "   FAIL $name ($((SECONDS - start)) s)" >&2
        touch "$logs/$name.failed"
    fi
}
export -f run_suite
printf '%s\n' "${e2e[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run_suite "$0" "$1" '"$logs"

for f in "$logs"/*.failed; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f" .failed)"
    failed+=("$name")
    echo "== $name failed; its log:" >&2
    cat "$logs/$name.log" >&2
done

if ((${#failed[@]})); then
    echo "test-binaries.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "test-binaries.sh: every test binary passed" >&2
