#!/usr/bin/env bash
# Installs what runtrust needs to build and test on Debian/Ubuntu. Idempotent: installs only what is missing.
#   swtpm, swtpm-tools   simulated TPM with EK certificates (tests, quickstart)
#   libtss2-dev          tpm2-tss, which tss-esapi links against
#   tpm2-tools           interoperability tests (tpm2_quote, tpm2_checkquote)
#   pkg-config, gcc      building the -sys crates
#   postgresql           the PostgreSQL store and replica tests (scripts/pg.sh starts a throwaway cluster)
#   openssl, curl        scripts/hostile.sh (TLS clients against a live service)
#   binutils, adduser    scripts/package.sh --test (strip; the package's postinst makes its system user)
#   jq                   the README walkthrough (reads a token's cti from `--json` output)
# With --browser (scripts/test.sh), also:
#   chromium, chromium-driver   the web console's tests in a real headless browser (swtpm-tests/tests/console.rs)
set -euo pipefail

PKGS=(swtpm swtpm-tools libtss2-dev tpm2-tools pkg-config gcc libc6-dev ca-certificates curl openssl binutils adduser postgresql jq)
if [[ "${1:-}" == "--browser" ]]; then
    PKGS+=(chromium chromium-driver)
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null; then
        echo "install-deps.sh: apt-get not found; install these with your package manager: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "install-deps.sh: run as root or install sudo" >&2; exit 1; }
        SUDO=sudo
    fi
    echo "install-deps.sh: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: Debian's packaged rustc is too old for the dependencies; use rustup's stable toolchain.
if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    echo "install-deps.sh: installing the Rust toolchain with rustup" >&2
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy >&2
    export PATH="$HOME/.cargo/bin:$PATH"
fi
for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
        rustup component add "$c" >&2
    fi
done
echo "install-deps.sh: all dependencies present" >&2
