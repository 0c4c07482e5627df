#!/usr/bin/env bash
# Runs README.md's walkthrough as written: every ```sh block, in order, in one `bash -euo pipefail` shell at
# the repository's root. The ```sh setup block (install the packages, build) is what scripts/test.sh has just
# done, so it is not run; RUNTRUST names the binary that was built. The first failing command fails the test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${RUNTRUST:?set RUNTRUST to the runtrust binary to walk through (scripts/test.sh does)}"
export RUNTRUST
script="$(mktemp)"
trap 'rm -f "$script"' EXIT
{
    # Whatever happens, nothing the walkthrough started outlives it.
    echo 'trap '\''kill $(jobs -p) 2>/dev/null || true; [ -z "${RUNTRUST_SWTPM_DIR:-}" ] || scripts/swtpm.sh stop 2>/dev/null || true'\'' EXIT'
    awk '/^```sh$/ { on = 1; next } /^```/ { on = 0; next } on' README.md
} >"$script"
blocks="$(grep -c '^```sh$' README.md || true)"
[[ "$blocks" -gt 0 ]] || { echo "readme-test: README.md has no \`\`\`sh blocks" >&2; exit 1; }
echo "readme-test: running README.md's $blocks sh blocks with $RUNTRUST" >&2
bash -euo pipefail -x "$script"
echo "readme-test: the README walkthrough ran as written" >&2
