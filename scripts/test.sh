#!/usr/bin/env bash
# The test command: installs missing dependencies, then format check, clippy (warnings are errors), and
# every test of the workspace, including the swtpm end-to-end tests (one swtpm per test, in parallel) and the
# PostgreSQL store and replica tests against a throwaway cluster (scripts/pg.sh), stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-deps.sh --browser
[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -D warnings" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== PostgreSQL: a throwaway cluster for the store and replica tests" >&2
export RUNTRUST_PG_DIR="${RUNTRUST_PG_DIR:-$(mktemp -d /tmp/runtrust-pg-test.XXXXXX)}"
trap 'scripts/pg.sh stop' EXIT
RUNTRUST_TEST_POSTGRES="$(scripts/pg.sh start)"
export RUNTRUST_TEST_POSTGRES
echo "== every test of the workspace (scripts/test-binaries.sh: the swtpm suites several at once; PostgreSQL at $RUNTRUST_TEST_POSTGRES)" >&2
scripts/test-binaries.sh
echo "== scripts/hostile.sh (issue 11's hostile inputs against a live service)" >&2
RUNTRUST_BIN="$PWD/target/debug/runtrust" scripts/hostile.sh
echo "== scripts/readme-test.sh (README.md's walkthrough, run as written)" >&2
RUNTRUST="$PWD/target/debug/runtrust" scripts/readme-test.sh
echo "== scripts/package.sh --test (build the .deb, install, run, remove, purge)" >&2
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
$SUDO scripts/package.sh --bin "$PWD/target/debug/runtrust" --test
