#!/usr/bin/env bash
# Builds a Debian package with dpkg-deb (docs/operations.md): dist/runtrust_VERSION_ARCH.deb holding
#   /usr/bin/runtrust, the systemd units runtrust.service and runtrust-agent.service, bash/zsh/fish
#   completions, man pages (runtrust(1) and one per subcommand), an example config and the docs.
# Dependencies are the Debian packages of the shared libraries the binary links (ldd + dpkg -S), so the
# package fits the machine's Debian release.
#
#   scripts/package.sh [--profile release|debug] [--bin PATH] [--test]
#
# --test (root): installs the package, checks `runtrust --version`, the units (systemd-analyze verify and
# security, where available), the man page and completions, then removes and purges it and checks that
# nothing is left behind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE=release BIN="" TEST=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) PROFILE="$2"; shift 2 ;;
        --bin) BIN="$2"; shift 2 ;;
        --test) TEST=1; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "package: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
for tool in dpkg-deb gzip ldd; do
    command -v "$tool" >/dev/null || { echo "package: $tool is missing: apt-get install dpkg-dev gzip libc-bin" >&2; exit 2; }
done
if [[ -z "$BIN" ]]; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --quiet --locked --profile "$PROFILE" --bin runtrust
    dir="$PROFILE"; [[ "$PROFILE" == dev ]] && dir=debug
    BIN="target/$dir/runtrust"
fi
[[ -x "$BIN" ]] || { echo "package: $BIN is not an executable" >&2; exit 2; }

VERSION="$("$BIN" --version | awk '{ print $2 }')"
ARCH="$(dpkg --print-architecture)"
OUT="dist/runtrust_${VERSION}_${ARCH}.deb"
ROOT="$(mktemp -d "${TMPDIR:-/tmp}/runtrust-deb.XXXXXX")"
trap 'rm -rf "$ROOT"' EXIT

install -D -m 0755 "$BIN" "$ROOT/usr/bin/runtrust"
strip --strip-debug "$ROOT/usr/bin/runtrust" 2>/dev/null || true
for unit in runtrust.service runtrust-agent.service; do
    install -D -m 0644 "packaging/$unit" "$ROOT/lib/systemd/system/$unit"
done
"$BIN" completions bash | install -D -m 0644 /dev/stdin "$ROOT/usr/share/bash-completion/completions/runtrust"
"$BIN" completions zsh | install -D -m 0644 /dev/stdin "$ROOT/usr/share/zsh/vendor-completions/_runtrust"
"$BIN" completions fish | install -D -m 0644 /dev/stdin "$ROOT/usr/share/fish/vendor_completions.d/runtrust.fish"
mkdir -p "$ROOT/usr/share/man/man1"
"$BIN" man --out "$ROOT/usr/share/man/man1" >/dev/null
gzip -9n "$ROOT"/usr/share/man/man1/*.1
install -D -m 0644 packaging/config.example.toml "$ROOT/usr/share/doc/runtrust/examples/config.toml"
for doc in README.md docs/design.md docs/config.md docs/operations.md; do
    [[ -f "$doc" ]] && install -D -m 0644 "$doc" "$ROOT/usr/share/doc/runtrust/$(basename "$doc")"
done
install -D -m 0644 packaging/copyright "$ROOT/usr/share/doc/runtrust/copyright"

# Depends: the packages that own the shared libraries the binary links.
deps="$(ldd "$BIN" | awk '/=> \// { print $3 }' | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | paste -sd, - | sed 's/,/, /g')"
[[ -n "$deps" ]] || { echo "package: could not find the packages of the linked libraries" >&2; exit 1; }
size="$(du -sk "$ROOT" | cut -f1)"
mkdir -p "$ROOT/DEBIAN"
cat >"$ROOT/DEBIAN/control" <<CONTROL
Package: runtrust
Version: $VERSION
Architecture: $ARCH
Maintainer: runtrust maintainers <maintainers@runtrust.invalid>
Installed-Size: $size
Depends: $deps, adduser
Recommends: tpm2-tools
Section: admin
Priority: optional
Homepage: https://github.com/runtrust/runtrust
Description: attestation-gated execution with TPM 2.0
 runtrust establishes trust before execution begins: a host's TPM quotes its
 PCRs, the service verifies the quote against policy and issues a short-lived
 COSE-signed execution token bound to the host's TPM key, and the execution
 gateway (runtrust exec) refuses to run anything without a valid token.
CONTROL
cat >"$ROOT/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group runtrust >/dev/null || addgroup --system runtrust >/dev/null
    getent passwd runtrust >/dev/null || adduser --system --ingroup runtrust --home /var/lib/runtrust-service \
        --no-create-home --shell /usr/sbin/nologin runtrust >/dev/null 2>&1
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
POSTINST
cat >"$ROOT/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl stop runtrust.service runtrust-agent.service >/dev/null 2>&1 || true
fi
exit 0
PRERM
cat >"$ROOT/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
# The service's data (keys, store) is never removed by the package: back it up, then delete it by hand.
if [ "$1" = purge ] && getent passwd runtrust >/dev/null; then
    deluser --system runtrust >/dev/null 2>&1 || true
fi
exit 0
POSTRM
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/prerm" "$ROOT/DEBIAN/postrm"
mkdir -p dist
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT" >/dev/null
echo "package: built $OUT ($(du -h "$OUT" | cut -f1); depends: $deps)" >&2

[[ "$TEST" == 1 ]] || { echo "$OUT"; exit 0; }
[[ "$(id -u)" == 0 ]] || { echo "package: --test installs the package: run it as root" >&2; exit 2; }
fail() { echo "package test: FAILED: $*" >&2; exit 1; }
if dpkg -s runtrust >/dev/null 2>&1; then fail "runtrust is already installed here; remove it first"; fi
dpkg -i "$OUT" >/dev/null || fail "dpkg -i"
/usr/bin/runtrust --version | grep -q "^runtrust $VERSION" || fail "runtrust --version"
for f in /lib/systemd/system/runtrust.service /lib/systemd/system/runtrust-agent.service \
    /usr/share/man/man1/runtrust.1.gz /usr/share/man/man1/runtrust-exec.1.gz \
    /usr/share/bash-completion/completions/runtrust /usr/share/doc/runtrust/examples/config.toml; do
    [[ -f "$f" ]] || fail "$f is missing"
done
getent passwd runtrust >/dev/null || fail "the runtrust system user was not created"
if command -v systemd-analyze >/dev/null; then
    for unit in runtrust.service runtrust-agent.service; do
        systemd-analyze verify "/lib/systemd/system/$unit" 2>&1 | grep -v "^$" | sed 's/^/  verify: /' >&2 || true
        score="$(systemd-analyze security --offline=true "/lib/systemd/system/$unit" 2>/dev/null | tail -1)"
        echo "package test: systemd-analyze security $unit: ${score:-not available here}" >&2
    done
fi
dpkg -r runtrust >/dev/null || fail "dpkg -r"
[[ ! -e /usr/bin/runtrust ]] || fail "/usr/bin/runtrust is left after removal"
dpkg -P runtrust >/dev/null || fail "dpkg -P"
getent passwd runtrust >/dev/null && fail "the runtrust user is left after purge"
left="$(dpkg -L runtrust 2>/dev/null || true)"
[[ -z "$left" ]] || fail "files still registered after purge"
echo "package test: installed, ran runtrust --version ($VERSION), removed and purged cleanly" >&2
echo "$OUT"
